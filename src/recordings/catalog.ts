// What the recordings directory holds, read from the files themselves (an operator removes
// recordings by deleting files, and the audit trail expires before they do): each one's session from
// its header's `kport` key, its start, its duration (the time of its last event) and its size.
import { closeSync, constants, openSync, readSync, readdirSync, fstatSync } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
// One recording as `kport recordings ls` shows it is the wire's shape: declared once, in api/wire.ts.
import type { RecordingInfo } from '../api/wire.ts';
import type { CastSession } from './asciicast.ts';
import { DEFAULT_LIST_LIMIT, validSessionId } from './store.ts';

/** A header is a line of a few hundred bytes; a long command line makes it longer, never past this. */
export const HEADER_MAX = 64 * 1024;
const HEADER_FIRST_READ = 4096;
/** The last event is found in this much of the file's end (an event line is one WebSocket message's output). */
export const TAIL_READ = 256 * 1024;

const text = z.string().max(4096);
const castSession = z.object({
  session_id: text,
  user: text,
  cluster: text,
  kind: z.enum(['exec', 'attach']),
  namespace: text.optional(),
  pod: text.optional(),
  container: text.optional(),
  command: text.optional(),
});
const header = z.object({ timestamp: z.number().int().nonnegative().optional(), kport: z.unknown().optional() });

/** The header's session and start; what does not parse is left out (a recording from before the key, or not kport's). */
export function headerFacts(line: string): { session?: CastSession; timestamp?: number } {
  let parsed;
  try {
    parsed = header.safeParse(JSON.parse(line));
  } catch {
    return {};
  }
  if (!parsed.success) return {};
  const session = castSession.safeParse(parsed.data.kport);
  return { ...(session.success && { session: session.data }), ...(parsed.data.timestamp !== undefined && { timestamp: parsed.data.timestamp }) };
}

/** The session ids of the directory's recordings: `<id>.cast` files, by name (their type is checked when opened). */
export function castIds(names: string[]): string[] {
  return names.flatMap((name) => {
    const id = name.endsWith('.cast') ? name.slice(0, -'.cast'.length) : '';
    return validSessionId(id) ? [id] : [];
  });
}

/** For the recording budget: whose recording `<id>.cast` is and its size, read without waiting on the event loop (a few KiB per new file). */
export function recordingOwnerSync(dir: string, id: string): { user?: string; bytes: number } | undefined {
  let fd: number;
  try {
    fd = openSync(join(dir, `${id}.cast`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return undefined;
    const buffer = Buffer.alloc(Math.min(stat.size, HEADER_MAX));
    let read = 0;
    // The first few KiB hold a header; a long one is read on to its end, up to HEADER_MAX.
    for (let want = Math.min(HEADER_FIRST_READ, buffer.length); read < buffer.length && !buffer.subarray(0, read).includes(10); want = buffer.length) {
      const n = readSync(fd, buffer, read, want - read, read);
      if (n === 0) break;
      read += n;
    }
    const nl = buffer.subarray(0, read).indexOf(10);
    const user = nl < 0 ? undefined : headerFacts(buffer.subarray(0, nl).toString('utf8')).session?.user;
    return { ...(user !== undefined && { user }), bytes: stat.size };
  } finally {
    closeSync(fd);
  }
}

/** Every `.cast` in `dir` that is a session's recording, by id (a missing directory is an empty one). */
export function castIdsSync(dir: string): string[] {
  try {
    return castIds(readdirSync(dir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * The newest `limit` recordings (by start), newest first. Every header is read (a few KiB each) to
 * order them; only the listed ones' ends are read for their durations.
 */
export async function listRecordings(dir: string, limit = DEFAULT_LIST_LIMIT): Promise<RecordingInfo[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const found: Array<{ info: RecordingInfo; order: number; written: number }> = [];
  for (const id of castIds(names)) {
    const info = await describe(dir, id);
    if (info) found.push(info);
  }
  // A header's timestamp is whole seconds: sessions begun in one second go by when they were last written.
  found.sort(newestFirst);
  const listed = found.slice(0, limit);
  for (const entry of listed) entry.info.duration_ms = await lastEventMs(dir, entry.info.session_id, entry.info.size_bytes);
  return listed.map((e) => e.info);
}

async function describe(dir: string, id: string): Promise<{ info: RecordingInfo; order: number; written: number } | undefined> {
  let file: FileHandle;
  try {
    file = await open(join(dir, `${id}.cast`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile()) return undefined;
    let { buffer, bytesRead } = await file.read(Buffer.alloc(Math.min(stat.size, HEADER_FIRST_READ)), 0, Math.min(stat.size, HEADER_FIRST_READ), 0);
    if (!buffer.subarray(0, bytesRead).includes(10) && stat.size > bytesRead)
      ({ buffer, bytesRead } = await file.read(Buffer.alloc(Math.min(stat.size, HEADER_MAX)), 0, Math.min(stat.size, HEADER_MAX), 0));
    const nl = buffer.subarray(0, bytesRead).indexOf(10);
    return describeRecording(id, nl < 0 ? undefined : buffer.subarray(0, nl).toString('utf8'), stat.size, stat.mtimeMs);
  } finally {
    await file.close();
  }
}

/** One recording as listed, from its header line (undefined when unread) and its size; `order` is its start, else when it was written. */
export function describeRecording(
  id: string,
  headerLine: string | undefined,
  size: number,
  writtenMs: number,
): { info: RecordingInfo; order: number; written: number } {
  const facts = headerLine === undefined ? {} : headerFacts(headerLine);
  const s = facts.session;
  // A file whose header names another session is not that session's recording.
  const own = s && s.session_id === id ? s : undefined;
  const started = facts.timestamp !== undefined ? facts.timestamp * 1000 : undefined;
  return {
    order: started ?? writtenMs,
    written: writtenMs,
    info: {
      session_id: id,
      user: own?.user ?? null,
      cluster: own?.cluster ?? null,
      kind: own?.kind ?? null,
      namespace: own?.namespace ?? null,
      pod: own?.pod ?? null,
      container: own?.container ?? null,
      command: own?.command ?? null,
      start: started !== undefined ? new Date(started).toISOString().replace(/\.\d{3}Z$/, 'Z') : null,
      duration_ms: null,
      size_bytes: size,
    },
  };
}

/** Newest first: by start, then by when last written, then by id. */
export function newestFirst(a: { info: RecordingInfo; order: number; written: number }, b: { info: RecordingInfo; order: number; written: number }): number {
  return b.order - a.order || b.written - a.written || a.info.session_id.localeCompare(b.info.session_id);
}

/** The time of the recording's last event, in ms (0 for a header alone); null when its end is not events. */
async function lastEventMs(dir: string, id: string, size: number): Promise<number | null> {
  let file: FileHandle;
  try {
    file = await open(join(dir, `${id}.cast`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const from = Math.max(0, size - TAIL_READ);
    const { buffer, bytesRead } = await file.read(Buffer.alloc(size - from), 0, size - from, from);
    return lastEventIn(buffer.subarray(0, bytesRead), from === 0);
  } finally {
    await file.close();
  }
}

/** The time in ms of the last event in a recording's end (`whole`: the recording from its first byte), 0 for a header alone, null when it ends in no event. */
export function lastEventIn(tail: Buffer, whole: boolean): number | null {
  const lines = tail.toString('utf8').split('\n');
  // The first piece may start mid-line, the last may be a line still being written.
  lines.pop();
  if (!whole) lines.shift();
  for (let i = lines.length - 1; i >= 0; i--) {
    if (whole && i === 0) return 0;
    try {
      const event = JSON.parse(lines[i]!) as unknown;
      if (Array.isArray(event) && typeof event[0] === 'number' && Number.isFinite(event[0]) && event[0] >= 0) return Math.round(event[0] * 1000);
    } catch {}
  }
  return null;
}
