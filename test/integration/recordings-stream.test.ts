// Plays of large recordings at a real server (attack issue #5): streamed at both ends, so neither
// the server nor `kport play` holds a recording whole, and bounded per person: past 4 plays in
// flight a person is refused (429) with the number, others are not, and a play that ends frees its slot.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ClientHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { writeLargeCast } from '../../bench/recordings.ts';
import { currentProfile, kportHome } from '../../src/client/profile.ts';
import { recordingsDir } from '../../src/recordings/store.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { Session } from '../helpers/person.ts';
import { waitFor } from '../peers/process.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;
const MiB = 1 << 20;
/** A chatty session that reached its 64 MiB cap. */
const SIZE = 64 * MiB - 256 * 1024;

/** A process's resident memory (VmRSS) and its peak so far (VmHWM), in MiB; undefined once it has gone. */
function memory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)![1]) / 1024;
    return { rss: kib('VmRSS'), peak: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

/** A play over HTTP/2 with the person's certificate; the stream is handed back unread (paused) once answered. */
async function openPlay(server: TestServer, who: Person, id: string): Promise<{ status: number; stream: ClientHttp2Stream; session: Session }> {
  const profile = currentProfile(kportHome({ HOME: who.home }))!;
  const session = await Session.open(server.port, profile.credential!);
  const stream = session.h2.request({ ':method': 'POST', ':path': '/v1/recordings', 'content-type': 'application/json' });
  stream.pause();
  stream.end(JSON.stringify({ session_id: id }));
  const status = await new Promise<number>((resolve, reject) => stream.once('response', (h) => resolve(Number(h[':status']))).once('error', reject));
  return { status, stream, session };
}

/** Reads a play to its end; its length and, for a refusal, its body. */
async function drain(play: { stream: ClientHttp2Stream; session: Session }): Promise<{ bytes: number; text: string }> {
  let bytes = 0;
  let text = '';
  for await (const chunk of play.stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (text.length < 4096) text += chunk.toString('utf8', 0, Math.min(chunk.length, 4096));
  }
  play.session.h2.close();
  return { bytes, text };
}

describe('plays of large recordings: streamed at both ends, bounded per person', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let audrey: Person;
  let otto: Person;
  let size = 0;
  let small = 0;

  before(async () => {
    server = await startServer();
    audrey = await invitedPerson(server, 'audrey', ['auditor']);
    otto = await invitedPerson(server, 'otto', ['auditor']);
    const dir = recordingsDir(join(server.dir, 'data'));
    size = writeLargeCast(dir, 'big', SIZE);
    small = writeLargeCast(dir, 'small', 256 * 1024);
  });
  after(async () => server?.stop());

  test('8 plays of a 64 MiB recording at once grow the server by far less than one copy of it (it grew 1 GiB for 4 when each play read the file whole); one kport play -o json peaks far below it too', async () => {
    const pid = server.proc!.pid!;
    // One small play first: what the first play loads is not counted.
    assert.ok((await drain(await openPlay(server, audrey, 'small'))).bytes >= small);
    const before = memory(pid)!.rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, memory(pid)?.rss ?? 0)), 25);
    try {
      const plays = await Promise.all(Array.from({ length: 8 }, (_, i) => openPlay(server, i % 2 ? otto : audrey, 'big')));
      assert.deepEqual(
        plays.map((p) => p.status),
        Array(8).fill(200),
      );
      const read = await Promise.all(plays.map(drain));
      // The file whole to each (as it is on disk: its own bytes, no more).
      assert.deepEqual(
        read.map((r) => r.bytes >= size),
        Array(8).fill(true),
      );
    } finally {
      clearInterval(sampler);
    }
    assert.ok(peak - before < 256, `the server grew ${Math.round(peak - before)} MiB (from ${Math.round(before)}) for 8 plays of ${SIZE / MiB} MiB`);

    // kport play -o json of the same recording: the document comes out whole, the process stays small.
    const play = execa(process.execPath, [KPORT_BIN, 'play', 'big', '-o', 'json'], {
      env: { HOME: audrey.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      buffer: false,
    });
    let clientPeak = 0;
    const watch = setInterval(() => (clientPeak = Math.max(clientPeak, memory(play.pid!)?.peak ?? 0)), 25);
    let out = 0;
    let tail = '';
    play.stdout!.on('data', (c: Buffer) => {
      out += c.length;
      tail = (tail + c.toString()).slice(-2000);
    });
    const res = await play;
    clearInterval(watch);
    assert.equal(res.exitCode, 0);
    assert.ok(out > size / 2, `${out} bytes of JSON`);
    assert.match(tail, /\n {2}\],\n {2}"header": \{[\s\S]*"session_id": "big"\n\}\n$/);
    assert.ok(clientPeak > 0 && clientPeak < 250, `kport play peaked at ${Math.round(clientPeak)} MiB`);
  });

  test('past 4 plays in flight a person is refused 429 with the number, kport play says so, another person still plays, and a play that ends frees its slot', async () => {
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await openPlay(server, audrey, 'big'));
    assert.deepEqual(
      held.map((p) => p.status),
      [200, 200, 200, 200],
    );
    try {
      const fifth = await openPlay(server, audrey, 'small');
      assert.equal(fifth.status, 429);
      assert.match(
        JSON.parse((await drain(fifth)).text).error.message,
        /^user audrey already has 4 recording plays or listings in flight, the most one person may have at once \(4\)/,
      );
      const cli = await audrey.kport(['play', 'small', '--speed', '1000']);
      assert.notEqual(cli.exitCode, 0);
      assert.equal(
        String(cli.stderr).trim(),
        `ERROR: user audrey already has 4 recording plays or listings in flight, the most one person may have at once (4): let one finish (or stop it with Ctrl-C), then play again.`,
      );
      const ls = await audrey.kport(['recordings', 'ls']);
      assert.match(String(ls.stderr), /already has 4 recording plays or listings in flight.*then list again/);

      const other = await otto.kport(['play', 'small', '-o', 'json']);
      assert.equal(other.exitCode, 0, String(other.stderr));
    } finally {
      // One reader goes away mid-play (its stream cancelled): the server stops reading and frees the slot.
      held[0]!.stream.close();
      held[0]!.session.h2.close();
    }
    const freed = await waitFor(
      'a freed slot',
      async () => {
        const res = await audrey.kport(['play', 'small', '-o', 'json']);
        return res.exitCode === 0 ? res : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.match(String(freed.stdout), /"session_id": "small"/);
    for (const p of held.slice(1)) {
      p.stream.close();
      p.session.h2.close();
    }
  });
});
