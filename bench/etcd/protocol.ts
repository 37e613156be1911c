import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { ETCD_PROTO_DIR, LOADER_OPTIONS } from '../../src/api/etcd/proto.js';

/**
 * The load generator's view of etcd's wire protocol. Requests are protobuf-encoded by the
 * generator itself (proto-loader's protobufjs serializers, ahead of time where the request does
 * not change) and handed to raw grpc-js channels with an identity serializer, so a call costs the
 * channel's work and nothing else. Responses are left as bytes unless the workload needs a field;
 * the hot ones (watch events, txn revisions) are read with the tiny wire reader below.
 */

const OWN_PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../src/api/etcd/proto');

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages are untyped by nature.
export type Msg = any;

type Method = MethodDefinition<Msg, Msg>;

let cachedDefs: Record<string, Method> | null = null;

/** 'etcdserverpb.KV/Put' style names to proto-loader's method definitions. */
function defs(): Record<string, Method> {
  if (cachedDefs) return cachedDefs;
  const pkg = loadSync([join(ETCD_PROTO_DIR, 'rpc.proto'), join(OWN_PROTO_DIR, 'v3lock.proto')], {
    ...LOADER_OPTIONS,
    includeDirs: [ETCD_PROTO_DIR, OWN_PROTO_DIR],
  });
  const out: Record<string, Method> = {};
  for (const [service, def] of Object.entries(pkg)) {
    if ('format' in def) continue; // a message or enum type, not a service
    for (const [name, method] of Object.entries(def as Record<string, Method>))
      out[`${service}/${name}`] = method;
  }
  cachedDefs = out;
  return out;
}

export interface Rpc {
  /** gRPC path, e.g. /etcdserverpb.KV/Put */
  path: string;
  encode: (request: Msg) => Buffer;
  decode: (response: Buffer) => Msg;
}

export function rpc(name: string): Rpc {
  const m = defs()[name];
  if (!m) throw new Error(`no such etcd method ${name}`);
  return { path: m.path, encode: (r) => m.requestSerialize(r), decode: (b) => m.responseDeserialize(b) };
}

export const RPC = {
  put: () => rpc('etcdserverpb.KV/Put'),
  range: () => rpc('etcdserverpb.KV/Range'),
  deleteRange: () => rpc('etcdserverpb.KV/DeleteRange'),
  txn: () => rpc('etcdserverpb.KV/Txn'),
  compact: () => rpc('etcdserverpb.KV/Compact'),
  leaseGrant: () => rpc('etcdserverpb.Lease/LeaseGrant'),
  leaseRevoke: () => rpc('etcdserverpb.Lease/LeaseRevoke'),
  watch: () => rpc('etcdserverpb.Watch/Watch'),
  status: () => rpc('etcdserverpb.Maintenance/Status'),
  lock: () => rpc('v3lockpb.Lock/Lock'),
  unlock: () => rpc('v3lockpb.Lock/Unlock'),
};

/**
 * etcd's enum values as numbers: the etcd3 package's .proto files spell the names in CamelCase
 * (Ascend, Create, Mod, Equal, Delete), and protobufjs silently encodes an unknown name as 0.
 */
export const SORT_ASCEND = 1;
export const SORT_DESCEND = 2;
export const SORT_BY_CREATE = 2;
export const COMPARE_EQUAL = 0;
export const COMPARE_CREATE = 1;
export const COMPARE_MOD = 2;
/** mvccpb.Event.EventType */
export const EVENT_DELETE = 1;

const identity = (b: Buffer): Buffer => b;

/** One client channel with its own TCP connection (no sharing through grpc-js's global pool). */
export function channel(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
}

/** A unary call with a pre-encoded request; resolves to the undecoded response bytes. */
export function call(
  client: grpc.Client,
  path: string,
  request: Buffer,
  timeoutMs = 30_000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      identity,
      identity,
      request,
      { deadline: Date.now() + timeoutMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** Encode, call, decode. */
export async function callDecoded(
  client: grpc.Client,
  method: Rpc,
  request: Msg,
  timeoutMs = 30_000,
): Promise<Msg> {
  return method.decode(await call(client, method.path, method.encode(request), timeoutMs));
}

/** What the load generator needs of a client channel: unary calls and bidirectional streams of raw bytes. */
export interface Channel {
  unary(path: string, request: Buffer, timeoutMs?: number): Promise<Buffer>;
  /** `onEnd` is called once when the server ends the stream or it fails, never after `cancel` */
  stream(path: string, onMessage: (m: Buffer) => void, onEnd: (err: Error | null) => void): ChannelStream;
  close(): void;
}

export interface ChannelStream {
  send(message: Buffer): void;
  cancel(): void;
}

/** The Channel over @grpc/grpc-js (the reference client; `--client grpc-js`). */
export class GrpcJsChannel implements Channel {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = channel(address);
  }

  unary(path: string, request: Buffer, timeoutMs = 30_000): Promise<Buffer> {
    return call(this.client, path, request, timeoutMs);
  }

  stream(path: string, onMessage: (m: Buffer) => void, onEnd: (err: Error | null) => void): ChannelStream {
    const s = this.client.makeBidiStreamRequest(path, identity, identity);
    let over = false;
    const end = (err: Error | null) => {
      if (over) return;
      over = true;
      onEnd(err);
    };
    s.on('data', (m: Buffer) => onMessage(m));
    s.on('error', (err) => end(err));
    s.on('end', () => end(null));
    return {
      send: (m) => {
        if (!over) s.write(m);
      },
      cancel: () => {
        over = true;
        s.cancel();
      },
    };
  }

  close(): void {
    this.client.close();
  }
}

export function grpcCode(err: unknown): number | undefined {
  return err && typeof err === 'object' && 'code' in err && typeof err.code === 'number'
    ? err.code
    : undefined;
}

export const isUnimplemented = (err: unknown): boolean => grpcCode(err) === grpc.status.UNIMPLEMENTED;

/** The first key after every key with this prefix (etcd's clientv3.GetPrefixRangeEnd). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

// ---- a minimal protobuf wire reader for the hot responses

/**
 * Calls `visit(field, wireType, value)` for each top-level field of `buf`: varints as numbers
 * (exact below 2^53, which covers revisions), length-delimited fields as subarrays (no copy).
 */
export function eachField(
  buf: Uint8Array,
  visit: (field: number, value: number | Uint8Array) => void,
  start = 0,
  end = buf.length,
): void {
  let i = start;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = buf[i++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  };
  while (i < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    switch (key & 7) {
      case 0:
        visit(field, varint());
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        const len = varint();
        visit(field, buf.subarray(i, i + len));
        i += len;
        break;
      }
      case 5:
        i += 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${key & 7}`);
    }
  }
}

export function firstField(buf: Uint8Array, field: number): number | Uint8Array | undefined {
  let out: number | Uint8Array | undefined;
  eachField(buf, (f, v) => {
    if (f === field && out === undefined) out = v;
  });
  return out;
}

export function numberField(buf: Uint8Array | undefined, field: number): number {
  if (!buf) return 0;
  const v = firstField(buf, field);
  return typeof v === 'number' ? v : 0;
}

export function bytesField(buf: Uint8Array | undefined, field: number): Uint8Array | undefined {
  if (!buf) return undefined;
  const v = firstField(buf, field);
  return v instanceof Uint8Array ? v : undefined;
}

/** ResponseHeader.revision of any response whose header is field 1. */
export const headerRevision = (response: Uint8Array): number => numberField(bytesField(response, 1), 3);
