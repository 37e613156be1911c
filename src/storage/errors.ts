/**
 * The storage error catalogue: one class per failure an operator or the shell must tell apart,
 * each with a stable `code` (fastify-style) and a message naming the file, offset or value.
 */

export type StorageErrorCode =
  | 'CNCL_STORAGE_FAILED'
  | 'CNCL_STORAGE_CORRUPT'
  | 'CNCL_STORAGE_LOCKED'
  | 'CNCL_STORAGE_VERSION'
  | 'CNCL_STORAGE_CLOSED'
  | 'CNCL_STORAGE_NOT_LOADED';

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageError';
    this.code = code;
  }
}

/** The storage hit a write/sync error or an invariant violation and accepts nothing more (fail-stop). */
export class StorageFailedError extends StorageError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CNCL_STORAGE_FAILED', message, options);
    this.name = 'StorageFailedError';
  }
}

/** On-disk data is damaged somewhere a crash cannot explain. Names the file and byte offset. */
export class StorageCorruptError extends StorageError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, reason: string) {
    super(
      'CNCL_STORAGE_CORRUPT',
      `corrupt data: ${file} at byte offset ${offset}: ${reason}. ` +
        'Refusing to start; restore this member from a peer, or start with --force-recover to ' +
        'truncate the log at this point (entries after it are lost on this member).',
    );
    this.name = 'StorageCorruptError';
    this.file = file;
    this.offset = offset;
  }
}

/** Another live process holds the data directory. */
export class StorageLockedError extends StorageError {
  readonly pid: number;
  constructor(lockFile: string, pid: number) {
    super(
      'CNCL_STORAGE_LOCKED',
      `data directory is in use by process ${pid} (lock file ${lockFile}); stop that process first, ` +
        'or remove the lock file if that PID is not a Conclave server',
    );
    this.name = 'StorageLockedError';
    this.pid = pid;
  }
}

/** The data directory was written by an incompatible format version. */
export class StorageVersionError extends StorageError {
  constructor(message: string) {
    super('CNCL_STORAGE_VERSION', message);
    this.name = 'StorageVersionError';
  }
}

export class StorageClosedError extends StorageError {
  constructor() {
    super('CNCL_STORAGE_CLOSED', 'storage is closed');
    this.name = 'StorageClosedError';
  }
}

export class StorageNotLoadedError extends StorageError {
  constructor(method: string) {
    super('CNCL_STORAGE_NOT_LOADED', `storage.${method}() called before load()`);
    this.name = 'StorageNotLoadedError';
  }
}
