// asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then one JSON array
// per event, [seconds since start, code, data]. Output ("o") and resizes ("r", "WxH") are what
// kport writes; a marker ("m") says where and why a recording stopped early.

export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  /** Unix seconds of the session's start. */
  timestamp?: number;
  title?: string;
  env?: Record<string, string>;
  /** kport's own key (asciicast readers pass over keys they do not know): whose session this is, for `kport recordings ls` and the recording budget. */
  kport?: CastSession;
}

export interface CastSession {
  session_id: string;
  user: string;
  cluster: string;
  kind: 'exec' | 'attach';
  namespace?: string;
  pod?: string;
  container?: string;
  command?: string;
}

export type CastCode = 'o' | 'i' | 'r' | 'm';
export type CastEvent = [time: number, code: CastCode, data: string];

export interface Cast {
  header: CastHeader;
  events: CastEvent[];
}

/** A recording that is not asciicast v2 where it says (a damaged file, or one kport did not write). */
export class CastError extends Error {}

export const DEFAULT_SIZE = { width: 80, height: 24 };

export const headerLine = (header: CastHeader): string => `${JSON.stringify(header)}\n`;

/** Microseconds are what asciinema writes; more digits only make files longer. */
export const eventLine = (seconds: number, code: CastCode, data: string): string => `${JSON.stringify([Math.round(seconds * 1e6) / 1e6, code, data])}\n`;

/**
 * Reads a recording, refusing anything that is not asciicast v2 with the line that is wrong: a cast
 * comes from the server's disk, and what `kport play` writes to a terminal must at least be what
 * the recorder wrote.
 */
export function parseCast(text: string): Cast {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const header = parseHeader(lines.shift() ?? '');
  const events: CastEvent[] = [];
  let last = 0;
  for (const [i, line] of lines.entries()) {
    const event = parseEvent(line, i + 2, last);
    last = event[0];
    events.push(event);
  }
  return { header, events };
}

/** parseCast line by line, as a recording streams in: the header first, then its events as they are read; a bad line throws when it is reached. */
export async function readCast(lines: AsyncIterable<string>): Promise<{ header: CastHeader; events: AsyncGenerator<CastEvent> }> {
  const it = lines[Symbol.asyncIterator]();
  const first = await it.next();
  const header = parseHeader(first.done ? '' : first.value);
  async function* events(): AsyncGenerator<CastEvent> {
    let last = 0;
    for (let n = 2, next = await it.next(); !next.done; n++, next = await it.next()) {
      const event = parseEvent(next.value, n, last);
      last = event[0];
      yield event;
    }
  }
  return { header, events: events() };
}

export function parseHeader(line: string): CastHeader {
  const header = tryJson(line) as Partial<CastHeader> | undefined;
  if (!header || typeof header !== 'object' || header.version !== 2 || !positive(header.width) || !positive(header.height)) {
    throw new CastError('line 1 is not an asciicast v2 header (version 2, width, height)');
  }
  return header as CastHeader;
}

/** Line `n` (1 is the header), after an event at `last` seconds. */
export function parseEvent(line: string, n: number, last: number): CastEvent {
  const event = tryJson(line);
  if (!Array.isArray(event) || event.length !== 3 || typeof event[0] !== 'number' || !['o', 'i', 'r', 'm'].includes(event[1]) || typeof event[2] !== 'string') {
    throw new CastError(`line ${n} is not an asciicast v2 event [time, code, data]`);
  }
  if (!(event[0] >= last) || !Number.isFinite(event[0])) throw new CastError(`line ${n} goes back in time (${event[0]} s after ${last} s)`);
  return event as CastEvent;
}

const positive = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 100_000;

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
