import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ExternalError, systemCause } from '../core/errors.ts';

// The SQLite store's failures as one sentence each, and the file-system steps of opening it (sqlite.ts).

type SqliteError = Error & { code: 'ERR_SQLITE_ERROR'; errcode: number; errstr: string };

export function isSqliteError(err: unknown): err is SqliteError {
  return (err as { code?: unknown })?.code === 'ERR_SQLITE_ERROR';
}

export function diskFull(path: string): boolean {
  try {
    const fs = statfsSync(dirname(path));
    return fs.bavail * fs.bsize < 64 * 1024;
  } catch {
    return false;
  }
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdir says ENOENT where the real cause is a
 * read-only or forbidden parent (EROFS, EACCES), and never returns under /proc.
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) mkdirSync(d, { mode: 0o700 });
}

export function cannotWrite(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') return true;
  return isSqliteError(err) && [8, 14].includes(err.errcode & 0xff); // SQLITE_READONLY, SQLITE_CANTOPEN
}

/** The store opened for reading only, when it exists but cannot be written (a read-only dir or mount). */
export function openReadOnly(DatabaseSync: typeof import('node:sqlite').DatabaseSync, path: string): import('node:sqlite').DatabaseSync | undefined {
  if (!existsSync(path)) return undefined;
  // A WAL database in a read-only directory cannot make its -shm file: immutable=1 reads the file as it is.
  for (const target of [path, `${pathToFileURL(path).href}?immutable=1`]) {
    try {
      const db = new DatabaseSync(target, { readOnly: true, timeout: 10_000 });
      db.prepare('SELECT revision FROM meta WHERE id = 1').get();
      return db;
    } catch {}
  }
  return undefined;
}

/** One sentence naming the store and the cause, instead of SQLite's or the OS's bare words. */
export function storeError(err: unknown, path: string, doing: 'open' | 'read' | 'write'): Error {
  const system = systemCause(err);
  if (system) return new ExternalError('sqlite', `Cannot ${doing} the store ${path}: ${system}.`, 1, { cause: err });
  if (!isSqliteError(err)) return err instanceof Error ? err : new Error(String(err));
  const sentence = (cause: string) => new ExternalError('sqlite', `Cannot ${doing} the store ${path}: ${cause}.`, 1, { cause: err });
  switch (err.errcode & 0xff) {
    case 13: // SQLITE_FULL
      return sentence('the disk is full (SQLITE_FULL); free some space and run again; nothing was written');
    case 8: // SQLITE_READONLY
      return sentence(
        'it is read-only (its directory or file system cannot be written); kport can read it but not change it; use a writable teleport.data_dir or --data-dir',
      );
    case 14: // SQLITE_CANTOPEN
      return sentence('the file or its directory cannot be opened; check that the data dir exists and is writable (teleport.data_dir or --data-dir)');
    case 5: // SQLITE_BUSY
      return sentence('another process held it locked for more than 10 s; try again');
    case 10: // SQLITE_IOERR: on a full disk, often the shared-memory or WAL file could not grow
      return diskFull(path)
        ? sentence('the disk is full (SQLITE_IOERR while growing its files); free some space and run again; nothing was written')
        : sentence(`an I/O error (${err.errstr}); check the disk`);
    case 11: // SQLITE_CORRUPT
    case 26: // SQLITE_NOTADB
      return sentence(`it is not a kport store or it is damaged (${err.errstr}); move it aside to start afresh`);
    default:
      return sentence(err.errstr || err.message);
  }
}
