// `kport play -o json|yaml`: the document `serialize({session_id, header, events})` makes, written
// as the events stream in, byte for byte the same, so a 64 MiB recording is never one value in
// memory. Each event is serialized where it sits in the whole (under `events`, at its indentation),
// which is what keeps YAML's folding and every escape identical.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { serialize } from '../../core/output.ts';
import type { CastEvent, CastHeader } from '../../recordings/asciicast.ts';

/** Written in pieces of about this much: one write per event would be one system call per event. */
const BATCH = 64 * 1024;

const JSON_ITEM = { prefix: '{\n  "events": [\n', suffix: '\n  ]\n}\n' };
const YAML_ITEM = { prefix: 'events:\n', suffix: '' };

/** The event as it reads inside the whole document's `events` list. */
function item(event: CastEvent, format: 'json' | 'yaml'): string {
  const [time, code, data] = event;
  const text = serialize({ events: [{ time, code, data }] }, format);
  const { prefix, suffix } = format === 'json' ? JSON_ITEM : YAML_ITEM;
  if (!text.startsWith(prefix) || !text.endsWith(suffix))
    throw new Error(`serialize() no longer lays out a list as cast-document.ts expects: ${JSON.stringify(text.slice(0, 40))}`);
  return text.slice(prefix.length, text.length - suffix.length);
}

/** What follows the events: the header and the session id, as the whole document has them. */
function rest(sessionId: string, header: CastHeader, format: 'json' | 'yaml'): string {
  const text = serialize({ header, session_id: sessionId }, format);
  return format === 'json' ? text.slice('{\n'.length) : text;
}

/** Writes the document to `out` as `events` yields, waiting for `out` to drain; false when `signal` stopped it. */
export async function writeCastDocument(
  out: Writable,
  format: 'json' | 'yaml',
  sessionId: string,
  header: CastHeader,
  events: AsyncIterable<CastEvent>,
  signal: AbortSignal,
): Promise<boolean> {
  let pending = '';
  const flush = async () => {
    const text = pending;
    pending = '';
    // Stopped while waiting on a reader that stopped reading: the caller says so.
    if (text && !out.write(text)) await once(out, 'drain', { signal }).catch(() => undefined);
  };
  let count = 0;
  pending += format === 'json' ? '{\n  "events": [' : 'events:';
  for await (const event of events) {
    if (signal.aborted) return false;
    pending += format === 'json' ? `${count === 0 ? '\n' : ',\n'}${item(event, format)}` : `${count === 0 ? '\n' : ''}${item(event, format)}`;
    count++;
    if (pending.length >= BATCH) await flush();
    if (signal.aborted) return false;
  }
  if (format === 'json') pending += count === 0 ? '],\n' : '\n  ],\n';
  else if (count === 0) pending += ' []\n';
  pending += rest(sessionId, header, format);
  await flush();
  return !signal.aborted;
}
