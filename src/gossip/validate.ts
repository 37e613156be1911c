/**
 * Every decoded packet is hostile until checked (DESIGN.md principle 5): `parseMessage` accepts
 * only well-formed messages within the limits below and returns a reason otherwise. The core
 * counts and drops what it rejects; nothing a peer sends can throw out of it.
 */
import type { Address, GossipMessage, MemberMeta, MemberState, Update } from './types.js';

export const limits = Object.freeze({
  nameMaxBytes: 256,
  addressMaxBytes: 256,
  /** Sequence numbers and incarnations stay exact doubles. */
  counterMax: Number.MAX_SAFE_INTEGER,
  updatesMax: 512,
  tagsMax: 64,
  portsMax: 16,
  stringMaxBytes: 512,
});

type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

class Invalid extends Error {}

function fail(reason: string): never {
  throw new Invalid(reason);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, field: string, maxLength: number, allowEmpty = false): string {
  if (typeof value !== 'string') fail(`${field} is not a string`);
  if (value.length > maxLength) fail(`${field} is longer than ${maxLength}`);
  if (!allowEmpty && value.length === 0) fail(`${field} is empty`);
  return value;
}

/** A map key; '__proto__' would rewrite the copy's prototype. */
function key(value: string, field: string): string {
  if (value === '__proto__') fail(`${field} is '__proto__'`);
  return text(value, field, limits.stringMaxBytes);
}

function counter(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > limits.counterMax)
    fail(`${field} is not a non-negative integer`);
  return value;
}

function flag(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail(`${field} is not a boolean`);
  return value;
}

function name(value: unknown, field = 'name'): string {
  return text(value, field, limits.nameMaxBytes);
}

function address(value: unknown, field = 'address'): Address {
  return text(value, field, limits.addressMaxBytes);
}

/** Checks a member's metadata; also used on the local member's own meta. */
export function parseMeta(value: unknown): MemberMeta {
  if (!isRecord(value)) fail('meta is not a map');
  const role = value.role;
  if (role !== 'server' && role !== 'client') fail(`meta.role is not 'server' or 'client'`);
  const ports = value.ports;
  if (!isRecord(ports)) fail('meta.ports is not a map');
  const portEntries = Object.entries(ports);
  if (portEntries.length > limits.portsMax) fail(`meta.ports has more than ${limits.portsMax} entries`);
  const cleanPorts: Record<string, number> = {};
  for (const [portName, port] of portEntries) {
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
      fail(`meta.ports.${portName} is not a port number`);
    cleanPorts[key(portName, 'meta.ports key')] = port;
  }
  const tags = value.tags;
  if (!isRecord(tags)) fail('meta.tags is not a map');
  const tagEntries = Object.entries(tags);
  if (tagEntries.length > limits.tagsMax) fail(`meta.tags has more than ${limits.tagsMax} entries`);
  const cleanTags: Record<string, string> = {};
  for (const [tagName, tag] of tagEntries)
    cleanTags[key(tagName, 'meta.tags key')] = text(tag, `meta.tags.${tagName}`, limits.stringMaxBytes, true);
  return {
    role,
    datacenter: text(value.datacenter, 'meta.datacenter', limits.stringMaxBytes),
    ports: cleanPorts,
    version: text(value.version, 'meta.version', limits.stringMaxBytes, true),
    tags: cleanTags,
  };
}

function parseUpdate(value: unknown): Update {
  if (!isRecord(value)) fail('update is not a map');
  switch (value.kind) {
    case 'alive':
      return {
        kind: 'alive',
        name: name(value.name),
        address: address(value.address),
        incarnation: counter(value.incarnation, 'incarnation'),
        meta: parseMeta(value.meta),
      };
    case 'suspect':
    case 'dead':
      return {
        kind: value.kind,
        name: name(value.name),
        incarnation: counter(value.incarnation, 'incarnation'),
        from: name(value.from, 'from'),
      };
    default:
      fail('update has an unknown kind');
  }
}

function parseUpdates(value: unknown): Update[] {
  if (!Array.isArray(value)) fail('updates is not an array');
  if (value.length > limits.updatesMax) fail(`more than ${limits.updatesMax} updates`);
  return value.map(parseUpdate);
}

function parseMemberState(value: unknown): MemberState {
  if (!isRecord(value)) fail('member is not a map');
  const status = value.status;
  if (status !== 'alive' && status !== 'suspect' && status !== 'dead' && status !== 'left')
    fail('member.status is unknown');
  return {
    name: name(value.name),
    address: address(value.address),
    incarnation: counter(value.incarnation, 'incarnation'),
    status,
    meta: parseMeta(value.meta),
  };
}

function parseUnchecked(value: unknown, maxMembers: number): GossipMessage {
  if (!isRecord(value)) fail('message is not a map');
  const from = name(value.from, 'from');
  switch (value.type) {
    case 'ping':
      return {
        type: 'ping',
        seq: counter(value.seq, 'seq'),
        from,
        target: name(value.target, 'target'),
        updates: parseUpdates(value.updates),
      };
    case 'ping-req':
      return {
        type: 'ping-req',
        seq: counter(value.seq, 'seq'),
        from,
        target: name(value.target, 'target'),
        targetAddress: address(value.targetAddress, 'targetAddress'),
        nack: flag(value.nack, 'nack'),
        updates: parseUpdates(value.updates),
      };
    case 'ack':
    case 'nack':
      return { type: value.type, seq: counter(value.seq, 'seq'), from, updates: parseUpdates(value.updates) };
    case 'gossip':
      return { type: 'gossip', from, updates: parseUpdates(value.updates) };
    case 'push-pull': {
      const members = value.members;
      if (!Array.isArray(members)) fail('members is not an array');
      if (members.length > maxMembers) fail(`more than ${maxMembers} members`);
      return {
        type: 'push-pull',
        from,
        join: flag(value.join, 'join'),
        reply: flag(value.reply, 'reply'),
        members: members.map(parseMemberState),
      };
    }
    default:
      fail('unknown message type');
  }
}

/** A clean copy of `value` if it is a valid message, else the reason it is not. */
export function parseMessage(value: unknown, maxMembers: number): Result<GossipMessage> {
  try {
    return { ok: true, value: parseUnchecked(value, maxMembers) };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, reason: error.message };
    throw error;
  }
}
