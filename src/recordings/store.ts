// Where recordings live and how they are read back: by session id, never by a path.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/** `<data_dir>/server/recordings`, 0700, files 0600. */
export const recordingsDir = (dataDir: string): string => join(dataDir, 'server', 'recordings');

/** A session id names a file, so it is letters, digits, `-` and `_` only: no `/`, no `..`. */
export function validSessionId(id: unknown): id is string {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(id);
}

export class NoRecording extends Error {}

/** `kport recordings ls` lists the newest 50, and at most 10,000 (each listed one costs a read of its end). */
export const DEFAULT_LIST_LIMIT = 50;
export const MAX_LIST_LIMIT = 10_000;

/** Bytes a play reads at a time: what a play holds, with its stream's buffers (bench/README.md "Recordings"). */
const READ_CHUNK = 64 * 1024;

export interface OpenedRecording {
  /** Bytes when it was opened: what the stream gives (a session still being recorded goes on growing after). */
  size: number;
  /** The file's bytes in chunks of 64 KiB, read as they are consumed; the file closes at its end or when the stream is destroyed. */
  stream: Readable;
}

/**
 * One session's cast, to be streamed, never read whole; NoRecording when there is none (or the id
 * cannot be one). A link in its place is not followed, and anything but a regular file (a FIFO would
 * hang the read) is not one.
 */
export async function openRecording(dir: string, id: string): Promise<OpenedRecording> {
  if (!validSessionId(id)) throw new NoRecording(`${JSON.stringify(id)} is not a session id (letters, digits, - and _)`);
  let file;
  try {
    file = await open(join(dir, `${id}.cast`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') throw new NoRecording(`no recording of session ${id}`);
    throw err;
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw new NoRecording(`no recording of session ${id} (its name is taken by something that is not a file)`);
    if (stat.size === 0) {
      await file.close();
      return { size: 0, stream: Readable.from([]) };
    }
    return { size: stat.size, stream: file.createReadStream({ start: 0, end: stat.size - 1, highWaterMark: READ_CHUNK }) };
  } catch (err) {
    await file.close();
    throw err;
  }
}
