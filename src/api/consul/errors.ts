import { RetryableError } from '../../server/raft-host.js';
import { StoreError, StoreErrorCode } from '../../store/index.js';
import { FilterError } from './filter.js';

/**
 * Consul's HTTP error shape: a status code and a plain-text body (no JSON envelope). The
 * texts a client may match on are Consul's own ("No cluster leader").
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  // Consul answers a bad ?filter= expression with 400.
  if (err instanceof FilterError) return new HttpError(400, err.message);
  if (err instanceof RetryableError) {
    switch (err.code) {
      case 'no-leader':
      case 'not-leader':
        return new HttpError(500, 'No cluster leader');
      case 'overloaded':
        return new HttpError(429, 'rate limit exceeded: too many uncommitted writes, retry later');
      default:
        return new HttpError(500, err.message);
    }
  }
  if (err instanceof StoreError) {
    switch (err.code) {
      case StoreErrorCode.ValueTooLarge:
      case StoreErrorCode.KeyTooLarge:
        return new HttpError(413, err.message);
      case StoreErrorCode.TooManyWatchers:
        return new HttpError(429, err.message);
      case StoreErrorCode.QuotaExceeded:
        return new HttpError(500, `database space exceeded: ${err.message}`);
      case StoreErrorCode.SessionNotFound:
      case StoreErrorCode.EmptyKey:
      case StoreErrorCode.InvalidArgument:
      case StoreErrorCode.TooManyOps:
        return new HttpError(400, err.message);
      default:
        return new HttpError(500, err.message);
    }
  }
  return new HttpError(500, err instanceof Error ? err.message : String(err));
}
