// kport play of a large recording (attack issue #5): the server's resident memory while N plays of
// one 64 MiB recording are in flight at once (raw HTTP/2 clients with auditors' certificates that
// read as fast as they can), and the peak RSS of one `kport play` process (-o json and text at
// --speed 1000). A fresh server per N, so each row's baseline is its own.
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { currentProfile, kportHome } from '../src/client/profile.ts';
import { eventLine, headerLine } from '../src/recordings/asciicast.ts';
import { recordingsDir } from '../src/recordings/store.ts';
import { invitedPerson, type Person } from '../test/helpers/login.ts';
import { startServer, type TestServer } from '../test/helpers/network.ts';
import { KPORT, procStat, row } from './lib.ts';

const MiB = 1 << 20;
/** Just under a recording's cap (64 MiB), as a chatty session that reached it leaves one. */
const SIZE = 64 * MiB - 256 * 1024;
const ID = 'big-session';
const WARM = 'warm-up';
/** Persons: a server bounds the plays one person has in flight, so the larger rows take several. */
const PEOPLE = 4;

/** Output as a busy shell draws it: colours, box drawing (multi-byte UTF-8), CRLF; 100 s of session. About `size` bytes: what it wrote. */
export function writeLargeCast(dir: string, id: string, size: number): number {
  const fd = openSync(join(dir, `${id}.cast`), 'wx', 0o600);
  let written = writeSync(
    fd,
    headerLine({ version: 2, width: 120, height: 40, timestamp: Math.floor(Date.now() / 1000), title: 'bench', env: { TERM: 'xterm-256color' } }),
  );
  const piece = (i: number) =>
    `\x1b[1;3${i % 8}m${String(i).padStart(8, '0')}\x1b[m ─┼─ lorem ipsum dolor sit amet ${'é€'.repeat(i % 5)} consectetur\r\n`.repeat(40);
  const events = Math.ceil(size / (Buffer.byteLength(eventLine(1, 'o', piece(1))) + 1));
  let batch = '';
  for (let i = 0; written + Buffer.byteLength(batch) < size; i++) {
    batch += eventLine((i * 100) / events, 'o', piece(i));
    if (batch.length > 1 << 16) {
      written += writeSync(fd, batch);
      batch = '';
    }
  }
  if (batch) written += writeSync(fd, batch);
  closeSync(fd);
  return written;
}

/** One play over HTTP/2 with the person's certificate, read to its end and dropped: the server's side alone. */
function rawPlay(server: TestServer, person: Person, id = ID): Promise<{ status: number; bytes: number }> {
  const profile = currentProfile(kportHome({ HOME: person.home }))!;
  const session = connect(`https://127.0.0.1:${server.port}`, { ca: profile.ca, cert: profile.credential!.cert, key: profile.credential!.key });
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/v1/recordings', 'content-type': 'application/json' });
    let status = 0;
    let bytes = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => (bytes += c.length));
    stream.on('end', () => {
      session.close();
      resolve({ status, bytes });
    });
    stream.on('error', reject);
    stream.end(JSON.stringify({ session_id: id }));
  });
}

async function serverRow(concurrent: number): Promise<string> {
  const server = await startServer();
  try {
    const people = [];
    for (let i = 0; i < PEOPLE; i++) people.push(await invitedPerson(server, `auditor${i}`, ['auditor']));
    const dir = recordingsDir(join(server.dir, 'data'));
    const size = writeLargeCast(dir, ID, SIZE);
    writeLargeCast(dir, WARM, 1 * MiB);
    const pid = server.proc!.pid!;
    // One small play first: code paths loaded and compiled before the baseline.
    await rawPlay(server, people[0]!, WARM);
    await new Promise((r) => setTimeout(r, 2000));
    const before = procStat(pid).rssMiB;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, procStat(pid).rssMiB)), 20);
    const started = performance.now();
    const plays = await Promise.all(Array.from({ length: concurrent }, (_, i) => rawPlay(server, people[i % PEOPLE]!)));
    const ms = performance.now() - started;
    clearInterval(sampler);
    const ok = plays.filter((p) => p.status === 200 && p.bytes === size).length;
    return row([String(concurrent), String(ok), before, peak, peak - before, ((peak - before) * 1024) / concurrent, ms]);
  } finally {
    await server.stop();
  }
}

/** Peak RSS (MiB) of one `kport play` process, from GNU time. */
function clientPeak(person: Person, args: string[]): number {
  const res = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, KPORT, 'play', ID, ...args], {
    env: { HOME: person.home, PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 20,
  });
  const kib = /(\d+)\s*$/.exec(String(res.stderr))?.[1];
  if (res.status !== 0 || !kib) throw new Error(`kport play ${args.join(' ')} failed: ${String(res.stderr)}`);
  return Number(kib) / 1024;
}

export async function benchRecordings(rows = [1, 4, 16]): Promise<string> {
  const lines = [
    `One recording of ${(SIZE / MiB).toFixed(2)} MiB played through the server by N clients at once (${PEOPLE} auditors)`,
    '',
    '| plays at once | played whole | server RSS MiB before | peak | growth | per play KiB | wall ms |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const n of rows) lines.push(await serverRow(n));
  const server = await startServer();
  try {
    const audrey = await invitedPerson(server, 'audrey', ['auditor']);
    writeLargeCast(recordingsDir(join(server.dir, 'data')), ID, SIZE);
    lines.push('', '| kport play (one process) | peak RSS MiB |', '|---|---|');
    lines.push(row(['-o json > /dev/null', clientPeak(audrey, ['-o', 'json'])]));
    lines.push(row(['--speed 1000 > /dev/null', clientPeak(audrey, ['--speed', '1000'])]));
  } finally {
    await server.stop();
  }
  lines.push('', `node ${process.version}, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 0);
  process.stdout.write(`${await benchRecordings(rows.length > 0 ? rows : undefined)}\n`);
}
