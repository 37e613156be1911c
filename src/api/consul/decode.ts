import type { FastifyRequest } from 'fastify';
import { badRequest } from './errors.js';

/**
 * Decoding of Consul's JSON request bodies. Consul decodes field names case-insensitively
 * (python-consul and older clients send "ttl", "lockdelay", "service"), and answers a body it
 * cannot use with 400 "Request decode failed: ...".
 */

export type JsonObject = Record<string, unknown>;

/** The request body as JSON; undefined when there is none. */
export function jsonBody(req: FastifyRequest): unknown {
  const body = req.body as Buffer | undefined;
  if (!body || body.byteLength === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw badRequest(`Request decode failed: ${(err as Error).message}`);
  }
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON object body (null or nothing reads as empty). */
export function objectBody(req: FastifyRequest): JsonObject {
  const v = jsonBody(req);
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw badRequest('Request decode failed: body must be a JSON object');
  return v;
}

/** How Consul matches field names: case-insensitive, and snake_case config keys match CamelCase ones. */
function normal(name: string): string {
  return name.toLowerCase().replaceAll('_', '');
}

/** Field lookup with Consul's case-insensitive decoding (`EnableTagOverride`, `enable_tag_override`). */
export function field(obj: JsonObject, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  const wanted = normal(name);
  const key = Object.keys(obj).find((k) => normal(k) === wanted);
  return key === undefined ? undefined : obj[key];
}

/** The first of several names a field goes by (Consul accepts "Service" and "Name" in places). */
export function fieldOf(obj: JsonObject, ...names: string[]): unknown {
  for (const name of names) {
    const v = field(obj, name);
    if (v !== undefined) return v;
  }
  return undefined;
}

const fail = (what: string, expected: string) =>
  badRequest(`Request decode failed: ${what} must be ${expected}`);

export function optString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw fail(what, 'a string');
  return v;
}

export function optBool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw fail(what, 'true or false');
  return v;
}

export function optInt(v: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw fail(what, `an integer between ${min} and ${max}`);
  return v;
}

export function optStrings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw fail(what, 'a list of strings');
  return v as string[];
}

export function optStringMap(v: unknown, what: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw fail(what, 'an object of strings');
  return { ...(v as Record<string, string>) };
}

export function optObject(v: unknown, what: string): JsonObject | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw fail(what, 'an object');
  return v;
}
