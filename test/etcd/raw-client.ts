import * as grpc from '@grpc/grpc-js';
import { etcdProtos } from './protos.js';

/**
 * Raw grpc-js clients of etcd's services, built from the same .proto files the server loads,
 * for what the etcd3 npm client does not expose (watch ids, progress requests, fragments,
 * keep-alive streams).
 */

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages.
export type Msg = any;

export interface RawClients {
  watch: grpc.Client & { Watch(metadata?: grpc.Metadata): grpc.ClientDuplexStream<Msg, Msg> };
  lease: grpc.Client & {
    LeaseKeepAlive(metadata?: grpc.Metadata): grpc.ClientDuplexStream<Msg, Msg>;
  };
  kv: grpc.Client;
  close(): void;
}

export function rawClients(endpoint: string): RawClients {
  const { etcdserverpb } = etcdProtos();
  const credentials = grpc.credentials.createInsecure();
  const watch = new etcdserverpb.Watch(endpoint, credentials);
  const lease = new etcdserverpb.Lease(endpoint, credentials);
  const kv = new etcdserverpb.KV(endpoint, credentials);
  return {
    watch,
    lease,
    kv,
    close: () => {
      watch.close();
      lease.close();
      kv.close();
    },
  };
}

/** A unary call as a promise. */
export function unaryCall(client: grpc.Client, method: string, request: Msg): Promise<Msg> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: Msg, cb: (e: Error | null, v: Msg) => void) => void>)[method]!(
      request,
      (err, value) => (err ? reject(err) : resolve(value)),
    );
  });
}

/** Reads a stream's messages one at a time, each with a deadline. */
export class StreamReader {
  private readonly queue: Msg[] = [];
  private waiter: ((m: Msg) => void) | null = null;
  private failure: Error | null = null;
  private failWaiter: ((e: Error) => void) | null = null;
  ended = false;

  constructor(readonly stream: grpc.ClientDuplexStream<Msg, Msg>) {
    stream.on('data', (m: Msg) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        this.failWaiter = null;
        w(m);
      } else this.queue.push(m);
    });
    const fail = (e: Error) => {
      this.failure = e;
      this.failWaiter?.(e);
    };
    stream.on('error', fail);
    stream.on('end', () => {
      this.ended = true;
      fail(new Error('stream ended'));
    });
  }

  write(request: Msg): void {
    this.stream.write(request);
  }

  next(timeoutMs = 3000, what = 'a response'): Promise<Msg> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.failWaiter = null;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.failWaiter = (e) => {
        clearTimeout(timer);
        this.waiter = null;
        reject(e);
      };
    });
  }

  /** Resolves if nothing arrives within `ms`; rejects with what did arrive. */
  async silentFor(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.queue.length > 0) throw new Error(`unexpected message: ${JSON.stringify(this.queue[0])}`);
  }

  cancel(): void {
    this.stream.cancel();
  }
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const text = (b: unknown): string => Buffer.from(b as Uint8Array).toString();

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
