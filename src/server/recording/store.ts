// Where recordings live and how they are read back: by session id, never by a path.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

/** `<data_dir>/server/recordings`, 0700, files 0600. */
export const recordingsDir = (dataDir: string): string => join(dataDir, 'server', 'recordings');

/** A session id names a file, so it is letters, digits, `-` and `_` only: no `/`, no `..`. */
export function validSessionId(id: unknown): id is string {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(id);
}

export class NoRecording extends Error {}

/**
 * The cast of one session; NoRecording when there is none (or the id cannot be one). A link in its
 * place is not followed. `maxBytes` bounds what is read into memory (a recording stops at its cap).
 */
export async function readRecording(dir: string, id: string, maxBytes: number): Promise<string> {
  if (!validSessionId(id)) throw new NoRecording(`${JSON.stringify(id)} is not a session id (letters, digits, - and _)`);
  let file;
  try {
    file = await open(join(dir, `${id}.cast`), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP') throw new NoRecording(`no recording of session ${id}`);
    throw err;
  }
  try {
    const { size } = await file.stat();
    if (size > maxBytes) throw new Error(`the recording of session ${id} is ${size} bytes, more than the ${maxBytes} a recording may hold`);
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}
