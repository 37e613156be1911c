import type { WatchEvent } from '../../store/index.js';
import { type ResponseHeader, toEtcdKv } from './context.js';
import { etcdService } from './proto.js';

/** etcdserverpb.WatchResponse as proto-loader takes it (64-bit fields as decimal strings). */
export interface WatchResponse {
  header: ResponseHeader;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
  events: WireEvent[];
}

export interface WireEvent {
  /** mvccpb.Event.EventType: 0 PUT, 1 DELETE (numbers: the loaded enum names vary by .proto copy). */
  type: 0 | 1;
  kv: Record<string, unknown>;
  prev_kv: Record<string, unknown> | null;
}

export function watchResponse(
  header: ResponseHeader,
  watchId: number,
  fields: Partial<Omit<WatchResponse, 'header' | 'watch_id'>> = {},
): WatchResponse {
  return {
    header,
    watch_id: String(watchId),
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    fragment: false,
    events: [],
    ...fields,
  };
}

export function toWireEvent(event: WatchEvent): WireEvent {
  return {
    type: event.type === 'put' ? 0 : 1,
    kv: toEtcdKv(event.kv),
    prev_kv: event.prevKv ? toEtcdKv(event.prevKv) : null,
  };
}

/** Encoded size of a response, as protobuf counts it (etcd's wr.Size()). */
function encodedSize(response: WatchResponse): number {
  return etcdService('etcdserverpb.Watch').Watch!.responseSerialize(response).length;
}

/**
 * etcd's sendFragments (v3rpc/watch.go): a response of at least `maxBytes` with two or more
 * events is split into several responses with `fragment: true` on all but the last; each
 * holds as many events as fit below `maxBytes` (at least one).
 */
export function fragmentResponse(response: WatchResponse, maxBytes: number): WatchResponse[] {
  if (response.events.length < 2 || encodedSize(response) < maxBytes) return [response];
  const base = encodedSize({ ...response, events: [], fragment: true });
  // A repeated field encodes as the concatenation of its elements, so sizes add up exactly.
  const empty = watchResponse(response.header, 0);
  const emptySize = encodedSize(empty);
  const eventBytes = response.events.map((event) => encodedSize({ ...empty, events: [event] }) - emptySize);
  const out: WatchResponse[] = [];
  let index = 0;
  while (index < response.events.length) {
    let size = base;
    const start = index;
    while (index < response.events.length) {
      const next = size + eventBytes[index]!;
      if (index > start && next >= maxBytes) break;
      size = next;
      index++;
    }
    out.push({ ...response, events: response.events.slice(start, index), fragment: true });
  }
  out[out.length - 1]!.fragment = false;
  return out;
}
