/**
 * Command encoding for Raft entries: msgpackr (compact, binary-safe, fast), one format byte in
 * front so the encoding can evolve. Decoding validates the shape of every field: entry bytes
 * are input, and no input may crash a replica (DESIGN principle 5).
 */
import { Packr } from 'msgpackr';
import type { Command } from './commands.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { isConsulFlags } from './types.js';

const FORMAT_VERSION = 1;
// skipValues (drop undefined fields) is supported by msgpackr 1.10+ but missing from its typings.
const packr = new Packr({ useRecords: false, skipValues: [undefined] } as ConstructorParameters<
  typeof Packr
>[0]);

export function encodeCommand(command: Command): Uint8Array {
  return packr.pack([FORMAT_VERSION, command]);
}

export function decodeCommand(bytes: Uint8Array): Command {
  let decoded: unknown;
  try {
    // msgpackr caches a DataView on the buffer it reads as an own property. Entry bytes stay in
    // the Raft log for thousands of writes, so it reads a throwaway view of them instead: the
    // DataView then dies young with the view, not kept (and copied by every scavenge) with them.
    decoded = packr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw corrupt(`undecodable command: ${(error as Error).message}`);
  }
  if (!Array.isArray(decoded) || decoded.length !== 2 || decoded[0] !== FORMAT_VERSION) {
    throw corrupt('command is not a [format, body] pair of a known format');
  }
  validateCommand(decoded[1]);
  return decoded[1];
}

function corrupt(message: string): StoreError {
  return new StoreError(StoreErrorCode.CorruptCommand, message);
}

// ---- shape validation ----

type Rule = (value: unknown) => boolean;
const isBytes: Rule = (v) => v instanceof Uint8Array;
const isInt: Rule = (v) => Number.isSafeInteger(v);
const isNumber: Rule = (v) => typeof v === 'number' && Number.isFinite(v);
const isBool: Rule = (v) => typeof v === 'boolean';
const isString: Rule = (v) => typeof v === 'string';
const optional =
  (rule: Rule): Rule =>
  (v) =>
    v === undefined || rule(v);
const oneOf =
  (...values: string[]): Rule =>
  (v) =>
    typeof v === 'string' && values.includes(v);
const arrayOf =
  (rule: Rule, maxLength = 1 << 20): Rule =>
  (v) =>
    Array.isArray(v) && v.length <= maxLength && v.every(rule);
const record: Rule = (v) =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((item) => typeof item === 'string');

function shape(fields: Record<string, Rule>): Rule {
  // Listed once here: every applied command is checked, on every server.
  const names = Object.keys(fields);
  const rules = Object.values(fields);
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const object = v as Record<string, unknown>;
    for (let i = 0; i < names.length; i++) if (!rules[i]!(object[names[i]!])) return false;
    return true;
  };
}

const rangeFields = {
  key: isBytes,
  rangeEnd: optional(isBytes),
  limit: optional(isInt),
  revision: optional(isInt),
  sortOrder: optional(oneOf('none', 'ascend', 'descend')),
  sortTarget: optional(oneOf('key', 'version', 'create', 'mod', 'value')),
  keysOnly: optional(isBool),
  countOnly: optional(isBool),
  minModRevision: optional(isInt),
  maxModRevision: optional(isInt),
  minCreateRevision: optional(isInt),
  maxCreateRevision: optional(isInt),
};
const putFields = {
  key: isBytes,
  value: isBytes,
  lease: optional(isInt),
  prevKv: optional(isBool),
  ignoreValue: optional(isBool),
  ignoreLease: optional(isBool),
};
const deleteFields = { key: isBytes, rangeEnd: optional(isBytes), prevKv: optional(isBool) };
const compare = shape({
  key: isBytes,
  rangeEnd: optional(isBytes),
  target: oneOf('value', 'version', 'create', 'mod', 'lease'),
  result: oneOf('equal', 'notEqual', 'greater', 'less'),
  value: (v) => isBytes(v) || isInt(v),
});

const MAX_DEPTH = 64;
function requestOp(v: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return false;
  const type = (v as { type?: unknown }).type;
  if (type === 'range') return shape(rangeFields)(v);
  if (type === 'put') return shape(putFields)(v);
  if (type === 'deleteRange') return shape(deleteFields)(v);
  if (type === 'txn') return txnOp(v, depth + 1);
  return false;
}
function txnOp(v: unknown, depth: number): boolean {
  return shape({
    compare: arrayOf(compare),
    success: arrayOf((op) => requestOp(op, depth)),
    failure: arrayOf((op) => requestOp(op, depth)),
  })(v);
}

/** Bounded collections inside catalog records (meta and tags are capped at the API edge too). */
const MAX_CATALOG_ITEMS = 1024;
const boundedRecord: Rule = (v) => record(v) && Object.keys(v as object).length <= MAX_CATALOG_ITEMS;

const status = oneOf('passing', 'warning', 'critical', 'maintenance');
const nodeRegistration = shape({
  node: isString,
  id: optional(isString),
  address: optional(isString),
  datacenter: optional(isString),
  taggedAddresses: optional(boundedRecord),
  meta: optional(boundedRecord),
});
const serviceRegistration = shape({
  id: isString,
  service: isString,
  tags: optional(arrayOf(isString, MAX_CATALOG_ITEMS)),
  address: optional(isString),
  port: optional(isInt),
  meta: optional(boundedRecord),
  kind: optional(isString),
  weights: optional(shape({ passing: isInt, warning: isInt })),
  enableTagOverride: optional(isBool),
});
const checkRegistration = shape({
  checkId: isString,
  name: optional(isString),
  status: optional(status),
  notes: optional(isString),
  output: optional(isString),
  serviceId: optional(isString),
  type: optional(isString),
});

const catalogVerb = oneOf('set', 'cas', 'get', 'delete', 'delete-cas');

const consulKvOp: Rule = (v) => {
  if (typeof v !== 'object' || v === null) return false;
  const verb = (v as { verb?: unknown }).verb;
  const keyOnly = { key: isBytes };
  // Flags are a safe integer or, above 2^53, a bigint (msgpack uint64).
  const withValue = { key: isBytes, value: isBytes, flags: optional(isConsulFlags) };
  switch (verb) {
    case 'set':
      return shape(withValue)(v);
    case 'cas':
      return shape({ ...withValue, index: isInt })(v);
    case 'lock':
    case 'unlock':
      return shape({ ...withValue, session: isInt })(v);
    case 'get':
    case 'get-or-empty':
    case 'get-tree':
    case 'check-not-exists':
    case 'delete':
    case 'delete-tree':
      return shape(keyOnly)(v);
    case 'check-index':
    case 'delete-cas':
      return shape({ key: isBytes, index: isInt })(v);
    case 'check-session':
      return shape({ key: isBytes, session: isInt })(v);
    default:
      return false;
  }
};

/** /v1/txn ops: KV ops carry no `target`; catalog and session ops name theirs. */
const consulOp: Rule = (v) => {
  if (typeof v !== 'object' || v === null) return false;
  const target = (v as { target?: unknown }).target;
  switch (target) {
    case undefined:
      return consulKvOp(v);
    case 'node':
      return shape({ verb: catalogVerb, node: nodeRegistration, index: optional(isInt) })(v);
    case 'service':
      return shape({
        verb: catalogVerb,
        node: isString,
        service: serviceRegistration,
        index: optional(isInt),
      })(v);
    case 'check':
      return shape({ verb: catalogVerb, node: isString, check: checkRegistration, index: optional(isInt) })(
        v,
      );
    case 'session':
      return shape({ verb: oneOf('delete'), session: isInt })(v);
    default:
      return false;
  }
};

const commandRules: Record<string, Rule> = {
  put: shape(putFields),
  deleteRange: shape(deleteFields),
  txn: (v) => txnOp(v, 1),
  compact: shape({ revision: isInt }),
  leaseGrant: shape({
    id: isInt,
    ttlMs: isInt,
    behavior: optional(oneOf('delete', 'release')),
    lockDelayMs: optional(isInt),
    node: optional(isString),
    checks: optional(arrayOf(isString)),
    name: optional(isString),
  }),
  leaseRevoke: shape({ id: isInt }),
  leaseKeepAlive: shape({ ids: arrayOf(isInt) }),
  leaseCheckpoint: shape({ checkpoints: arrayOf(shape({ id: isInt, remainingMs: isInt })) }),
  leaseExpire: shape({ ids: arrayOf(isInt) }),
  leaseRenewAll: shape({}),
  // The store's maxTxnOps is the real limit; this only bounds what a decoder walks.
  consulTxn: shape({ ops: arrayOf(consulOp, 4096) }),
  catalogRegister: shape({
    node: nodeRegistration,
    service: optional(serviceRegistration),
    checks: optional(arrayOf(checkRegistration)),
  }),
  catalogDeregister: shape({ node: isString, serviceId: optional(isString), checkId: optional(isString) }),
  checkUpdate: shape({ node: isString, checkId: isString, status, output: optional(isString) }),
};

/** Throws CORRUPT_COMMAND unless `value` has the shape of a Command. */
export function validateCommand(value: unknown): asserts value is Command {
  if (typeof value !== 'object' || value === null) throw corrupt('command is not an object');
  const { type, timeMs } = value as { type?: unknown; timeMs?: unknown };
  const rule = typeof type === 'string' && Object.hasOwn(commandRules, type) ? commandRules[type] : undefined;
  if (rule === undefined) throw corrupt(`unknown command type ${String(type)}`);
  if (!isNumber(timeMs)) throw corrupt(`command ${type} has no valid timeMs`);
  if (!rule(value)) throw corrupt(`command ${type} has a malformed field`);
}
