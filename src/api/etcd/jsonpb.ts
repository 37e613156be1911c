import { etcdProtoDefinition } from './proto.js';

/**
 * The JSON mapping etcd 3.4's grpc-gateway applies to its protobuf messages: grpc-gateway
 * v1.9.5's default marshaler, `JSONPb{OrigName: true}` over golang/protobuf's jsonpb, so
 *
 * - field names are the .proto names (`range_end`, `create_revision`, `ID`, `TTL`, `dbSize`);
 *   input also accepts the lowerCamelCase JSON names (`rangeEnd`), as jsonpb does;
 * - EmitDefaults is off: a zero scalar, an empty bytes/string/list and an unset message are
 *   left out (`more: false`, `count: "0"`, a kv's `lease: "0"` and a PUT event's `type` are absent);
 * - 64-bit integers are decimal strings, 32-bit ones JSON numbers; input accepts either;
 * - bytes are standard base64; enums are etcd's names (`NOT_EQUAL`, `DELETE`), input accepts
 *   names or numbers;
 * - unknown input fields are ignored (grpc-gateway's allowUnknownFields).
 *
 * The schema is etcd's own rpc.proto as shipped by the etcd3 package (see proto.ts). That copy
 * spells enum values in PascalCase (`NotEqual`); etcd's names are the UPPER_SNAKE form.
 */

// ------------------------------------------------------------------ JSON text

/** A JSON number kept as its source text, so 64-bit integers lose no precision. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | Map<string, JsonValue>;

/** The text ended inside a value: more input may complete it. */
export class JsonIncomplete extends Error {}

const MAX_DEPTH = 1000;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Go's quoteChar in encoding/json syntax errors: 'x'. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  return `'${JSON.stringify(c).slice(1, -1)}'`;
}

/** Parse one JSON value starting at `pos` (after optional whitespace); returns it and where it ended. */
export function parseJsonValue(text: string, pos: number): { value: JsonValue; end: number } {
  let i = pos;
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  const fail = (what: string): never => {
    if (i >= text.length) throw new JsonIncomplete('unexpected EOF');
    throw new SyntaxError(`invalid character ${quoteChar(text[i] as string)} ${what}`);
  };
  const literal = (word: string, value: JsonValue): JsonValue => {
    for (let k = 0; k < word.length; k++, i++) {
      if (i >= text.length) throw new JsonIncomplete('unexpected EOF');
      if (text[i] !== word[k]) fail(`in literal ${word} (expecting ${JSON.stringify(word[k])})`);
    }
    return value;
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) throw new JsonIncomplete('unexpected EOF');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('in string literal');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      if (i + 1 >= text.length) throw new JsonIncomplete('unexpected EOF');
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (i + 4 > text.length) throw new JsonIncomplete('unexpected EOF');
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('in \\u hexadecimal character escape');
          out += String.fromCharCode(Number.parseInt(hex, 16));
          i += 4;
          break;
        }
        default:
          i--;
          fail('in string escape code');
      }
      start = i;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) throw new SyntaxError('exceeded max depth');
    ws();
    const c = text[i];
    switch (c) {
      case '{': {
        i++;
        const obj = new Map<string, JsonValue>();
        ws();
        if (text[i] === '}') {
          i++;
          return obj;
        }
        for (;;) {
          ws();
          if (text[i] !== '"') fail('looking for beginning of object key string');
          const key = string();
          ws();
          if (text[i] !== ':') fail('after object key');
          i++;
          obj.set(key, value(depth + 1));
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === '}') {
            i++;
            return obj;
          }
          fail('after object key:value pair');
        }
      }
      case '[': {
        i++;
        const arr: JsonValue[] = [];
        ws();
        if (text[i] === ']') {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === ']') {
            i++;
            return arr;
          }
          fail('after array element');
        }
      }
      case '"':
        return string();
      case 't':
        return literal('true', true);
      case 'f':
        return literal('false', false);
      case 'n':
        return literal('null', null);
      default: {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m) return fail('looking for beginning of value');
        i += m[0].length;
        // A number cut off by the end of the input may continue in the next chunk.
        if (i >= text.length) throw new JsonIncomplete('unexpected EOF');
        return new JsonNumber(m[0]);
      }
    }
  };
  const v = value(0);
  return { value: v, end: i };
}

/** Index of the first non-whitespace character at or after `pos` (text.length if none). */
export function skipWhitespace(text: string, pos: number): number {
  let i = pos;
  while (i < text.length && /[ \t\r\n]/.test(text[i] as string)) i++;
  return i;
}

/**
 * The first JSON value of a complete body, as Go's json.Decoder reads it (anything after the
 * first value is not read); null for an empty body (io.EOF, which the gateway ignores).
 */
export function parseJsonBody(text: string): JsonValue | undefined {
  const start = skipWhitespace(text, 0);
  if (start >= text.length) return undefined;
  // A trailing space lets a number at the very end complete.
  return parseJsonValue(text + ' ', start).value;
}

/** Go's encoding/json string escaping (HTML-safe: <, >, & and U+2028/9 as \u escapes). */
export function jsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

// ------------------------------------------------------------------ schema

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

interface EnumDescriptor {
  name: string;
  value: { name: string; number: number }[];
}

interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  enumType: EnumDescriptor[];
  oneofDecl: { name: string }[];
}

interface EnumInfo {
  fullName: string;
  /** etcd's name (UPPER_SNAKE) by number. */
  names: Map<number, string>;
  /** Number by etcd's name. */
  numbers: Map<string, number>;
  /** Number by the loaded .proto's spelling (what proto-loader decodes to). */
  loadedNumbers: Map<string, number>;
}

interface FieldInfo {
  name: string;
  jsonName: string;
  repeated: boolean;
  kind: string;
  message?: MessageInfo;
  enumInfo?: EnumInfo;
}

export interface MessageInfo {
  fullName: string;
  fields: FieldInfo[];
  byInputName: Map<string, FieldInfo>;
  oneofs: string[];
}

/** `NotEqual` → `NOT_EQUAL`, `Nospace` → `NOSPACE`: etcd's spelling of the etcd3 package's enum values. */
export function etcdEnumName(loaded: string): string {
  return loaded.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** protoc's JSON name: `range_end` → `rangeEnd`. */
function jsonNameOf(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

class Schema {
  private readonly messageDescs = new Map<string, MessageDescriptor>();
  private readonly enumDescs = new Map<string, EnumDescriptor>();
  private readonly messages = new Map<string, MessageInfo>();
  private readonly enums = new Map<string, EnumInfo>();

  constructor() {
    // etcd's rpc.proto (kv.proto, auth.proto) and our v3lock/v3election definitions (proto.ts).
    const def = etcdProtoDefinition() as unknown as Record<string, { format?: string; type?: unknown }>;
    for (const [name, entry] of Object.entries(def)) {
      if (entry.format === 'Protocol Buffer 3 DescriptorProto') {
        const desc = entry.type as MessageDescriptor;
        this.messageDescs.set(name, desc);
        for (const e of desc.enumType ?? []) this.enumDescs.set(`${name}.${e.name}`, e);
      } else if (entry.format === 'Protocol Buffer 3 EnumDescriptorProto') {
        this.enumDescs.set(name, entry.type as EnumDescriptor);
      }
    }
  }

  message(fullName: string): MessageInfo {
    const known = this.messages.get(fullName);
    if (known) return known;
    const desc = this.messageDescs.get(fullName);
    if (!desc) throw new Error(`no message type ${fullName} in etcd's protos`);
    const info: MessageInfo = {
      fullName,
      fields: [],
      byInputName: new Map(),
      oneofs: (desc.oneofDecl ?? []).map((o) => o.name),
    };
    this.messages.set(fullName, info); // before resolving fields: messages may nest themselves
    for (const f of desc.field) {
      const field: FieldInfo = {
        name: f.name,
        jsonName: jsonNameOf(f.name),
        repeated: f.label === 'LABEL_REPEATED',
        kind: f.type,
      };
      if (f.type === 'TYPE_MESSAGE')
        field.message = this.message(this.resolve(fullName, f.typeName, 'message'));
      if (f.type === 'TYPE_ENUM') field.enumInfo = this.enumInfo(this.resolve(fullName, f.typeName, 'enum'));
      info.fields.push(field);
      info.byInputName.set(field.name, field);
      info.byInputName.set(field.jsonName, field);
    }
    return info;
  }

  private enumInfo(fullName: string): EnumInfo {
    const known = this.enums.get(fullName);
    if (known) return known;
    const desc = this.enumDescs.get(fullName) as EnumDescriptor;
    const info: EnumInfo = { fullName, names: new Map(), numbers: new Map(), loadedNumbers: new Map() };
    for (const v of desc.value) {
      const name = etcdEnumName(v.name);
      if (!info.names.has(v.number)) info.names.set(v.number, name);
      info.numbers.set(name, v.number);
      info.loadedNumbers.set(v.name, v.number);
    }
    this.enums.set(fullName, info);
    return info;
  }

  /** Protobuf name resolution: innermost scope first. */
  private resolve(scope: string, typeName: string, kind: 'message' | 'enum'): string {
    const table = kind === 'message' ? this.messageDescs : this.enumDescs;
    if (typeName.startsWith('.')) return typeName.slice(1);
    let s = scope;
    for (;;) {
      const candidate = s ? `${s}.${typeName}` : typeName;
      if (table.has(candidate)) return candidate;
      if (!s) throw new Error(`cannot resolve ${kind} ${typeName} from ${scope}`);
      const dot = s.lastIndexOf('.');
      s = dot < 0 ? '' : s.slice(0, dot);
    }
  }
}

let schema: Schema | null = null;

/** A message type of etcd's API (`etcdserverpb.RangeRequest`, `mvccpb.KeyValue`, `v3lockpb.LockRequest`). */
export function messageType(fullName: string): MessageInfo {
  schema ??= new Schema();
  return schema.message(fullName);
}

// ------------------------------------------------------------------ JSON → message

/** A request that does not fit its message type; the gateway reports it as a bad request. */
export class JsonMappingError extends Error {}

const INT64_KINDS = new Set(['TYPE_INT64', 'TYPE_SINT64', 'TYPE_SFIXED64']);
const UINT64_KINDS = new Set(['TYPE_UINT64', 'TYPE_FIXED64']);
const INT32_KINDS = new Set(['TYPE_INT32', 'TYPE_SINT32', 'TYPE_SFIXED32']);
const UINT32_KINDS = new Set(['TYPE_UINT32', 'TYPE_FIXED32']);
const FLOAT_KINDS = new Set(['TYPE_DOUBLE', 'TYPE_FLOAT']);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return v.text;
  if (v instanceof Map) return 'object';
  if (Array.isArray(v)) return 'array';
  return JSON.stringify(v);
}

function integer(v: JsonValue, min: bigint, max: bigint, field: string): bigint {
  const text = v instanceof JsonNumber ? v.text : typeof v === 'string' ? v.trim() : null;
  if (text === null || !/^-?\d+$/.test(text))
    throw new JsonMappingError(`bad value ${describe(v)} for integer field ${field}`);
  const n = BigInt(text);
  if (n < min || n > max) throw new JsonMappingError(`value ${text} out of range for field ${field}`);
  return n;
}

function scalarFromJson(f: FieldInfo, v: JsonValue, path: string): unknown {
  if (f.message) {
    if (!(v instanceof Map)) throw new JsonMappingError(`bad value ${describe(v)} for message field ${path}`);
    return fromJsonMessage(f.message, v, path);
  }
  if (f.enumInfo) {
    if (v instanceof JsonNumber) return Number(integer(v, -(2n ** 31n), 2n ** 31n - 1n, path));
    if (typeof v === 'string') {
      const n = f.enumInfo.numbers.get(v);
      if (n === undefined)
        throw new JsonMappingError(`unknown value ${JSON.stringify(v)} for enum ${f.enumInfo.fullName}`);
      return n;
    }
    throw new JsonMappingError(`bad value ${describe(v)} for enum field ${path}`);
  }
  if (INT64_KINDS.has(f.kind)) return integer(v, INT64_MIN, INT64_MAX, path).toString();
  if (UINT64_KINDS.has(f.kind)) return integer(v, 0n, UINT64_MAX, path).toString();
  if (INT32_KINDS.has(f.kind)) return Number(integer(v, -(2n ** 31n), 2n ** 31n - 1n, path));
  if (UINT32_KINDS.has(f.kind)) return Number(integer(v, 0n, 2n ** 32n - 1n, path));
  if (FLOAT_KINDS.has(f.kind)) {
    if (v instanceof JsonNumber) return Number(v.text);
    if (typeof v === 'string' && (v === 'NaN' || v === 'Infinity' || v === '-Infinity')) return Number(v);
    throw new JsonMappingError(`bad value ${describe(v)} for number field ${path}`);
  }
  switch (f.kind) {
    case 'TYPE_BOOL':
      if (typeof v !== 'boolean')
        throw new JsonMappingError(`bad value ${describe(v)} for bool field ${path}`);
      return v;
    case 'TYPE_STRING':
      if (typeof v !== 'string')
        throw new JsonMappingError(`bad value ${describe(v)} for string field ${path}`);
      return v;
    case 'TYPE_BYTES':
      if (typeof v !== 'string' || !BASE64.test(v))
        throw new JsonMappingError(`illegal base64 data ${describe(v)} for bytes field ${path}`);
      return Buffer.from(v, 'base64');
    default:
      throw new JsonMappingError(`unsupported field type ${f.kind} of ${path}`);
  }
}

/**
 * A JSON object as the plain object protobufjs' fromObject takes (proto field names, bytes as
 * Buffers, 64-bit integers as decimal strings, enums as numbers). Null means "not set".
 */
export function fromJsonMessage(type: MessageInfo, json: JsonValue, path = ''): Record<string, unknown> {
  if (!(json instanceof Map))
    throw new JsonMappingError(`cannot decode ${describe(json)} as ${type.fullName.split('.').pop()}`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of json) {
    const f = type.byInputName.get(key);
    if (!f || v === null) continue; // unknown fields are ignored; null is the default
    const fieldPath = path ? `${path}.${f.name}` : f.name;
    if (f.repeated) {
      if (!Array.isArray(v))
        throw new JsonMappingError(`bad value ${describe(v)} for repeated field ${fieldPath}`);
      out[f.name] = v.map((item) => scalarFromJson(f, item, fieldPath));
    } else {
      out[f.name] = scalarFromJson(f, v, fieldPath);
    }
  }
  return out;
}

// ------------------------------------------------------------------ message → JSON

function isDefault(f: FieldInfo, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (f.message) return false;
  if (f.enumInfo) {
    const n = typeof v === 'number' ? v : f.enumInfo.loadedNumbers.get(String(v));
    return n === 0;
  }
  if (typeof v === 'string')
    return v === '' || ((INT64_KINDS.has(f.kind) || UINT64_KINDS.has(f.kind)) && v === '0');
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'boolean') return !v;
  if (v instanceof Uint8Array) return v.byteLength === 0;
  if (typeof v === 'bigint') return v === 0n;
  return false;
}

function scalarToJson(f: FieldInfo, v: unknown): string {
  if (f.message) return toJsonMessage(f.message, v as Record<string, unknown>);
  if (f.enumInfo) {
    const n = typeof v === 'number' ? v : f.enumInfo.loadedNumbers.get(String(v));
    const name = n === undefined ? undefined : f.enumInfo.names.get(n);
    return name !== undefined ? jsonString(name) : String(n ?? 0);
  }
  if (INT64_KINDS.has(f.kind) || UINT64_KINDS.has(f.kind)) return jsonString(String(v));
  if (FLOAT_KINDS.has(f.kind)) {
    const n = Number(v);
    return Number.isFinite(n) ? String(n) : jsonString(String(n));
  }
  if (f.kind === 'TYPE_BYTES') return jsonString(Buffer.from(v as Uint8Array).toString('base64'));
  if (f.kind === 'TYPE_STRING') return jsonString(String(v));
  if (f.kind === 'TYPE_BOOL') return v ? 'true' : 'false';
  return String(Number(v));
}

/**
 * A decoded message (proto-loader's shape: proto names, Buffers, 64-bit integers as strings,
 * enums by name, null for an unset message) as jsonpb writes it with OrigName and without
 * EmitDefaults: fields in declaration order, defaults left out, except a oneof member that is
 * set, which is written even when zero.
 */
export function toJsonMessage(type: MessageInfo, msg: Record<string, unknown>): string {
  const parts: string[] = [];
  const chosen = new Set<unknown>(type.oneofs.map((o) => msg[o]).filter((v) => typeof v === 'string'));
  for (const f of type.fields) {
    const v = msg[f.name];
    if (f.repeated) {
      if (!Array.isArray(v) || v.length === 0) continue;
      parts.push(`${jsonString(f.name)}:[${v.map((item) => scalarToJson(f, item)).join(',')}]`);
      continue;
    }
    if (v === null || v === undefined) continue;
    if (isDefault(f, v) && !chosen.has(f.name)) continue;
    parts.push(`${jsonString(f.name)}:${scalarToJson(f, v)}`);
  }
  return `{${parts.join(',')}}`;
}
