// Reading recordings back without holding them whole (attack issue #5): lines out of chunks, the cast
// parsed as it streams, `play -o json|yaml` written event by event and still the very document
// serialize() makes of the whole, and the directory's catalog behind `kport recordings ls`.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { LineTooLong, splitLines } from '../../src/core/lines.ts';
import { serialize } from '../../src/core/output.ts';
import { writeCastDocument } from '../../src/commands/play/cast-document.ts';
import { eventLine, headerLine, readCast, type CastEvent, type CastHeader } from '../../src/recordings/asciicast.ts';
import { listRecordings } from '../../src/recordings/catalog.ts';
import { openRecording } from '../../src/recordings/store.ts';
import { tempDir } from '../peers/process.ts';

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function* chunks(...parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield part;
}

test('splitLines: characters split across chunks come whole, the last line without a newline comes too, and a line past the bound stops the read', async () => {
  const text = 'a€b\n😀\n\nlast';
  const bytes = Buffer.from(text);
  // Every split point, through the middle of each multi-byte character.
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(await collect(splitLines(chunks(bytes.subarray(0, cut), bytes.subarray(cut)))), ['a€b', '😀', '', 'last'], `cut at ${cut}`);
  }
  await assert.rejects(collect(splitLines(chunks(Buffer.from('x'.repeat(100)), Buffer.from('y'.repeat(100))), 150)), LineTooLong);
  assert.deepEqual(await collect(splitLines(chunks(Buffer.from('short\n'.repeat(3))), 10)), ['short', 'short', 'short']);
});

test('splitLines reads its source only as lines are asked for: a reader that waits, waits the stream', async () => {
  let pulled = 0;
  async function* source(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 1000; i++) {
      pulled++;
      yield Buffer.from(`line ${i}\n`);
    }
  }
  const lines = splitLines(source());
  await lines.next();
  await lines.next();
  assert.equal(pulled, 2);
  await lines.return(undefined);
});

test('readCast: the header first, events as they are read, a damaged line named where it is', async () => {
  const header = headerLine({ version: 2, width: 80, height: 24 });
  const lines = async function* (rest: string[]) {
    yield header.trimEnd();
    yield* rest;
  };
  const cast = await readCast(lines([eventLine(0.5, 'o', 'hi').trimEnd(), eventLine(1, 'r', '100x30').trimEnd()]));
  assert.deepEqual([cast.header.width, cast.header.height], [80, 24]);
  assert.deepEqual(await collect(cast.events), [
    [0.5, 'o', 'hi'],
    [1, 'r', '100x30'],
  ]);
  const bad = await readCast(lines([eventLine(2, 'o', 'a').trimEnd(), eventLine(1, 'o', 'b').trimEnd()]));
  await assert.rejects(collect(bad.events), /line 3 goes back in time \(1 s after 2 s\)/);
  await assert.rejects(
    readCast(
      (async function* () {
        yield '{"version":1}';
      })(),
    ),
    /line 1 is not an asciicast v2 header/,
  );
});

const HEADER: CastHeader = {
  version: 2,
  width: 120,
  height: 40,
  timestamp: 1_700_000_000,
  title: 'alice on prod: exec default/web-0 -- sh',
  env: { TERM: 'xterm-256color' },
};
/** What a terminal or a YAML 1.1 reader could misread: controls, C1, DEL, bidi, plain-looking words, long lines that fold. */
const HOSTILE: CastEvent[] = [
  [0, 'o', '\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[31mred\x1b[m\r\n'],
  [0.1, 'o', '\u009b6n\u007f\u202eevil\u200b'],
  [0.2, 'o', 'no'],
  [0.3, 'o', '0755'],
  [0.4, 'o', ''],
  [0.5, 'r', '100x30'],
  [1.25, 'o', `${'word '.repeat(60)}\r\n${'x'.repeat(300)}`],
  [2, 'm', 'kport stopped recording: the recording reached its cap of 67108864 bytes'],
  [3.000001, 'o', '€😀 ─┼─\n  indented: yes\n- item'],
];

for (const format of ['json', 'yaml'] as const) {
  test(`play -o ${format}: written event by event, byte for byte what serialize() makes of the whole, with no events too`, async () => {
    for (const events of [HOSTILE, [], HOSTILE.slice(0, 1)]) {
      const out = new PassThrough();
      let written = '';
      out.on('data', (c: Buffer) => (written += c));
      const done = await writeCastDocument(out, format, 's-1', HEADER, chunksOf(events), new AbortController().signal);
      assert.equal(done, true);
      const whole = serialize({ session_id: 's-1', header: HEADER, events: events.map(([time, code, data]) => ({ time, code, data })) }, format);
      assert.equal(written, whole, `${events.length} events`);
    }
  });
}

async function* chunksOf(events: CastEvent[]): AsyncGenerator<CastEvent> {
  for (const e of events) yield e;
}

test('recordings ls reads the directory: whose session each file holds (its header), newest first, the duration from its last event, its size; other files and links are not recordings', async () => {
  const dir = join(tempDir('catalog'), 'recordings');
  mkdirSync(dir, { recursive: true });
  const write = (id: string, header: object, events: CastEvent[]) =>
    writeFileSync(join(dir, `${id}.cast`), `${JSON.stringify(header)}\n${events.map(([t, c, d]) => eventLine(t, c, d)).join('')}`);
  const kport = (id: string, user: string) => ({ session_id: id, user, cluster: 'prod', kind: 'exec', namespace: 'apps', pod: 'web', command: 'sh' });
  write('older', { version: 2, width: 80, height: 24, timestamp: 1_700_000_000, kport: kport('older', 'alice') }, [
    [0.5, 'o', 'a'],
    [83.4, 'o', 'b'],
  ]);
  write('newer', { version: 2, width: 80, height: 24, timestamp: 1_700_000_100, kport: { ...kport('newer', 'bob'), kind: 'attach', container: 'app' } }, []);
  // Before kport wrote its key: listed with what the file says.
  write('plain', { version: 2, width: 80, height: 24, timestamp: 1_600_000_000 }, [[1, 'o', 'x']]);
  // A header that claims another session is not believed.
  write('liar', { version: 2, width: 80, height: 24, timestamp: 1_500_000_000, kport: kport('older', 'mallory') }, []);
  writeFileSync(join(dir, 'notes.txt'), 'not a recording');
  writeFileSync(join(dir, '..', 'outside.cast'), `${JSON.stringify({ version: 2, width: 1, height: 1, kport: kport('linked', 'eve') })}\n`);
  symlinkSync(join(dir, '..', 'outside.cast'), join(dir, 'linked.cast'));
  utimesSync(join(dir, 'plain.cast'), new Date(), new Date());

  const all = await listRecordings(dir);
  assert.deepEqual(
    all.map((r) => r.session_id),
    ['newer', 'older', 'plain', 'liar'],
  );
  const [newer, older, plain, liar] = all;
  assert.deepEqual(older, {
    session_id: 'older',
    user: 'alice',
    cluster: 'prod',
    kind: 'exec',
    namespace: 'apps',
    pod: 'web',
    container: null,
    command: 'sh',
    start: '2023-11-14T22:13:20Z',
    duration_ms: 83_400,
    size_bytes: older!.size_bytes,
  });
  assert.ok(older!.size_bytes > 100);
  assert.deepEqual([newer!.user, newer!.kind, newer!.container, newer!.duration_ms], ['bob', 'attach', 'app', 0]);
  assert.deepEqual([plain!.user, plain!.cluster, plain!.start, plain!.duration_ms], [null, null, '2020-09-13T12:26:40Z', 1000]);
  assert.equal(liar!.user, null);
  assert.deepEqual(
    (await listRecordings(dir, 2)).map((r) => r.session_id),
    ['newer', 'older'],
  );
  assert.deepEqual(await listRecordings(join(dir, 'missing')), []);
});

test('openRecording streams the file in chunks of at most 64 KiB, the size it had when opened', async () => {
  const dir = tempDir('open');
  const body = `${'y'.repeat(300_000)}\n`;
  writeFileSync(join(dir, 'big.cast'), body);
  const opened = await openRecording(dir, 'big');
  assert.equal(opened.size, body.length);
  const sizes: number[] = [];
  for await (const chunk of opened.stream) sizes.push((chunk as Buffer).length);
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    body.length,
  );
  assert.ok(Math.max(...sizes) <= 64 * 1024, String(sizes));
});
