// Reading the server's audit trail and session recordings: `kport get audit --since/--user/--cluster`
// filtered at a real server (and on its local store), `kport play` through the server for an auditor
// and from the data dir on the server's host, with --speed and -o json.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import * as ws from 'ws';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { ServerAudit } from '../../src/server/events/audit.ts';
import { SessionRecorder } from '../../src/server/events/recording/recorder.ts';
import { recordingsDir } from '../../src/recordings/store.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';

const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, opts: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean }): Buffer[] } };
const frame = (channel: number, data: string, mask: boolean) =>
  Buffer.concat(Sender.frame(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), { fin: true, opcode: 2, mask, readOnly: false }));
const MINUTE = 60_000;

/**
 * Writes a session into the server's recordings dir with the server's own recorder, on frames as
 * kubectl and the apiserver send them, at the session times given (seconds).
 */
async function record(server: TestServer, id: string, outputs: Array<[number, string]>): Promise<void> {
  let clock = 0;
  const recorder = new SessionRecorder({ dir: recordingsDir(join(server.dir, 'data')), audit: { record: async () => {} }, log: () => {}, clock: () => clock });
  const session = recorder.start({
    sessionId: id,
    person: 'alice',
    cluster: 'prod',
    kubeUser: 'alice',
    kubeGroups: [],
    namespace: 'default',
    pod: 'web-0',
    command: 'sh',
    protocol: 'v5.channel.k8s.io',
  });
  session.fromUpstream(
    Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n'),
  );
  session.fromClient(frame(4, '{"Width":100,"Height":30}', true));
  for (const [at, text] of outputs) {
    clock = at * 1000;
    session.fromUpstream(frame(1, text, false));
  }
  await session.end();
}

/** The built CLI's play, with when each piece of its stdout arrived (ms after the first). */
async function timedPlay(
  env: Record<string, string>,
  cwd: string,
  args: string[],
): Promise<{ exitCode: number | undefined; pieces: Array<{ at: number; text: string }>; stderr: string }> {
  const proc = execa(process.execPath, [KPORT_BIN, 'play', ...args], { cwd, env, extendEnv: false, reject: false });
  const pieces: Array<{ at: number; text: string }> = [];
  proc.stdout!.on('data', (c: Buffer) => pieces.push({ at: performance.now(), text: String(c) }));
  const res = await proc;
  const first = pieces[0]?.at ?? 0;
  return { exitCode: res.exitCode, pieces: pieces.map((p) => ({ at: p.at - first, text: p.text })), stderr: String(res.stderr) };
}

/** When `text` had fully arrived. */
const arrival = (pieces: Array<{ at: number; text: string }>, text: string) => {
  let seen = '';
  for (const p of pieces) {
    seen += p.text;
    if (seen.includes(text)) return p.at;
  }
  assert.fail(`${JSON.stringify(text)} never arrived: ${JSON.stringify(seen)}`);
};

describe('audit and recordings through the server: get audit filters, kport play', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let audrey: Person;
  let alice: Person;
  const now = Date.now();

  before(async () => {
    server = await startServer();
    audrey = await invitedPerson(server, 'audrey', ['auditor']);
    alice = await invitedPerson(server, 'alice', ['access']);
    // Kubernetes requests and a session as the routing writes them, through ServerAudit on the server's store.
    const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
    let at = now;
    const audit = new ServerAudit(store, { log: () => {}, now: () => new Date(at) });
    const request = (user: string, cluster: string, agoMs: number, name: string) => {
      at = now - agoMs;
      return audit.record({
        type: 'kube.request',
        outcome: 'allowed',
        user,
        cluster,
        kube_user: user,
        kube_groups: ['developers'],
        verb: 'get',
        resource: 'pods',
        namespace: 'default',
        name,
        status: 200,
        duration_ms: 3,
        host_id: 'agent-1',
      });
    };
    await request('alice', 'prod', 30 * MINUTE, 'recent-prod');
    await request('alice', 'staging', 20 * MINUTE, 'recent-staging');
    await request('bob', 'prod', 10 * MINUTE, 'bob-prod');
    await request('alice', 'prod', 3 * 60 * MINUTE, 'old-prod');
    await request('alice', 'prod', 3 * 24 * 60 * MINUTE, 'days-old-prod');
    at = now - 5 * MINUTE;
    await audit.record({
      type: 'session.start',
      outcome: 'allowed',
      user: 'alice',
      cluster: 'prod',
      session_id: 's-42',
      action: 'exec',
      namespace: 'default',
      pod: 'web-0',
      command: 'sh',
      recorded: true,
    });
    await store.close();
  });
  after(async () => server?.stop());

  test("get audit --since 1h --user alice --cluster prod: only those events, filtered at the server for an auditor and on the store on the server's host; text shows the request and the session", async () => {
    const names = (out: unknown) =>
      (JSON.parse(String(out)) as Array<{ spec: { name?: string; session_id?: string } }>).map((e) => e.spec.name ?? e.spec.session_id);
    for (const [who, label] of [
      [audrey, 'through the server'],
      [server, 'local store'],
    ] as const) {
      let res = await who.kport(['get', 'audit', '--since', '1h', '--user', 'alice', '--cluster', 'prod', '-o', 'json']);
      assert.equal(res.exitCode, 0, `${label}: ${String(res.stderr)}`);
      assert.deepEqual(names(res.stdout), ['recent-prod', 's-42'], label);
      res = await who.kport(['get', 'audit', '--since', '4h', '--cluster', 'prod', '-o', 'json']);
      assert.deepEqual(names(res.stdout), ['old-prod', 'recent-prod', 'bob-prod', 's-42'], label);
      res = await who.kport(['get', 'audit', '--since', '7d', '--user', 'alice', '--cluster', 'prod', '-o', 'yaml']);
      assert.match(String(res.stdout), /days-old-prod[\s\S]*old-prod[\s\S]*recent-prod/, label);
      res = await who.kport(['get', 'audit', '--user', 'bob']);
      assert.equal(res.exitCode, 0, String(res.stderr));
      const [header, ...rows] = String(res.stdout)
        .trimEnd()
        .split('\n')
        .map((l) => l.split('\t'));
      assert.deepEqual(header, ['Time', 'Type', 'Outcome', 'User', 'Cluster', 'Host', 'Token', 'Action', 'Reason', 'From']);
      assert.deepEqual(
        rows.map((r) => [r[1], r[3], r[4], r[5], r[7]]),
        [['kube.request', 'bob', 'prod', 'agent-1', 'get pods/bob-prod -n default -> 200']],
        label,
      );
    }
    const session = await audrey.kport(['get', 'audit', '--since', '1h', '--user', 'alice', '--cluster', 'prod']);
    assert.match(String(session.stdout), /session\.start\tallowed\talice\tprod\t-\t-\texec default\/web-0 -- sh \[recorded\] session s-42/);
    const refused = await alice.kport(['get', 'audit', '--since', '1h']);
    assert.equal(refused.exitCode, 4, String(refused.stderr));
    assert.equal(
      String(refused.stderr).trim(),
      `ERROR: The kport server at ${server.address} refused: user alice (access) may not list audit resources (no role allows it).`,
    );
    const misuse = await audrey.kport(['get', 'kube_cluster', '--user', 'alice']);
    assert.equal(misuse.exitCode, 2);
    assert.match(String(misuse.stderr), /--user filters the audit trail: kport get audit --user alice\./);
  });

  test('kport play through the server: an auditor gets the output in order and -o json the events; a person without the session rule, a missing session and a path for an id are refused', async () => {
    await record(server, 's-json', [
      [0.1, 'hello\r\n'],
      [0.6, 'world\r\n'],
    ]);
    const res = await audrey.kport(['play', 's-json', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const played = JSON.parse(String(res.stdout)) as {
      session_id: string;
      header: { version: number; width: number; height: number };
      events: Array<{ time: number; code: string; data: string }>;
    };
    assert.equal(played.session_id, 's-json');
    assert.deepEqual([played.header.version, played.header.width, played.header.height], [2, 100, 30]);
    assert.deepEqual(played.events, [
      { time: 0.1, code: 'o', data: 'hello\r\n' },
      { time: 0.6, code: 'o', data: 'world\r\n' },
    ]);

    const text = await audrey.kport(['play', 's-json', '--speed', '100']);
    assert.equal(text.exitCode, 0, String(text.stderr));
    assert.equal(String(text.stdout), 'hello\r\nworld');

    const denied = await alice.kport(['play', 's-json']);
    assert.equal(denied.exitCode, 4, String(denied.stderr));
    assert.equal(
      String(denied.stderr).trim(),
      `ERROR: The kport server at ${server.address} refused: user alice (access) may not read session resources (no role allows it).`,
    );
    const missing = await audrey.kport(['play', 'nope']);
    assert.equal(missing.exitCode, 1, String(missing.stderr));
    assert.match(String(missing.stderr), /no recording of session nope at this server: find sessions with kport recordings ls/);
    const traversal = await audrey.kport(['play', '../../kport.yaml']);
    assert.notEqual(traversal.exitCode, 0);
    assert.match(String(traversal.stderr), /is not a session id/);
    // Damaged after two events: what came before is played (it streams), then the damage is named, exit 1.
    writeFileSync(
      join(recordingsDir(join(server.dir, 'data')), 's-bad.cast'),
      `${JSON.stringify({ version: 2, width: 80, height: 24 })}\n[0.1,"o","one\\r\\n"]\n[0.2,"o","two\\r\\n"]\nnot json\n[0.3,"o","three"]\n`,
      { mode: 0o600 },
    );
    const damaged = await audrey.kport(['play', 's-bad', '--speed', '100']);
    assert.equal(damaged.exitCode, 1, String(damaged.stderr));
    assert.equal(String(damaged.stdout), 'one\r\ntwo');
    assert.equal(
      String(damaged.stderr).trim(),
      'ERROR: The recording of session s-bad is not asciicast v2 (line 4 is not an asciicast v2 event [time, code, data]): it was damaged or written by something else.',
    );
    const badSpeed = await audrey.kport(['play', 's-json', '--speed', '0']);
    assert.equal(badSpeed.exitCode, 2);
    assert.match(String(badSpeed.stderr), /--speed is a number above 0/);
  });

  test('kport play through the server writes what the pod drew and none of what acts outside the screen or asks the terminal to answer, even split across frames; -o json shows it all as escaped data', async () => {
    const draws = [
      '\x1b[?1049h',
      '\x1b[1;24r',
      '\x1b[H\x1b[2J',
      '\x1b[?25l',
      '\x1b[1;31m',
      'red',
      '\x1b[m',
      '\x1b(0lqk\x1b(B',
      '\x1b[12;40H',
      '\x1b7\x1b8',
      '\x1b[?25h',
      '\x1b[?1049l',
    ];
    const hostile = [
      '\x1b]52;c;ZWNobyBwd25lZA==\x07',
      '\x1b]0;pwned\x1b\\',
      '\x1b]8;;https://evil.example/\x07',
      '\x1bP$qm\x1b\\',
      '\x1b[21t',
      '\x1b[6n',
      '\x1b[c',
      '\x1b[>c',
      '\x1b[?2026$p',
      '\x1b[x',
      '\x1b_Gf=100;AAAA\x1b\\',
      '\u009d0;c1 title\u0007',
      '\x05',
    ];
    // Drawing and hostile sequences interleaved, then cut into frames mid-sequence.
    const output = `${draws.map((d, i) => d + (hostile[i] ?? '')).join('')}${hostile.slice(draws.length).join('')}end\r\n`;
    const frames: Array<[number, string]> = [];
    for (let i = 0; i < output.length; i += 5) frames.push([i / 1000, output.slice(i, i + 5)]);
    await record(server, 's-hostile', frames);

    const text = await audrey.kport(['play', 's-hostile', '--speed', '100']);
    assert.equal(text.exitCode, 0, String(text.stderr));
    assert.equal(String(text.stdout), `${draws.join('')}end`);
    for (const h of hostile) assert.ok(!String(text.stdout).includes(h), `${JSON.stringify(h)} reached the terminal`);
    assert.doesNotMatch(String(text.stdout), /\x1b[\]P_^X]|\x05|[\u0080-\u009f]|pwned|evil\.example/);

    const json = await audrey.kport(['play', 's-hostile', '-o', 'json']);
    assert.equal(json.exitCode, 0, String(json.stderr));
    assert.doesNotMatch(String(json.stdout), /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no raw control in -o json');
    const events = (JSON.parse(String(json.stdout)) as { events: Array<{ data: string }> }).events;
    assert.equal(events.map((e) => e.data).join(''), output, '-o json reads back as recorded');
  });

  test("kport recordings ls through the server for an auditor and on the server's host: who, cluster, pod, start, duration; -o json|yaml; refused to a person whose roles do not list sessions", async () => {
    await record(server, 's-ls-a', [
      [0.2, 'a\r\n'],
      [83.4, 'b\r\n'],
    ]);
    for (const [who, label] of [
      [audrey, 'through the server'],
      [server, "on the server's host"],
    ] as const) {
      const json = await who.kport(['recordings', 'ls', '-o', 'json']);
      assert.equal(json.exitCode, 0, `${label}: ${String(json.stderr)}`);
      const listed = JSON.parse(String(json.stdout)) as Array<Record<string, unknown>>;
      const mine = listed.find((r) => r.session_id === 's-ls-a');
      assert.deepEqual(
        { ...mine, start: undefined, size_bytes: undefined },
        {
          session_id: 's-ls-a',
          user: 'alice',
          cluster: 'prod',
          kind: 'exec',
          namespace: 'default',
          pod: 'web-0',
          container: null,
          command: 'sh',
          duration_ms: 83_400,
          start: undefined,
          size_bytes: undefined,
        },
        label,
      );
      assert.ok(Math.abs(Date.parse(String(mine!.start)) - Date.now()) < 300_000, String(mine!.start));
      assert.ok(Number(mine!.size_bytes) > 100);
      const yaml = await who.kport(['recordings', 'ls', '-o', 'yaml', '--limit', '1']);
      assert.equal(yaml.exitCode, 0, String(yaml.stderr));
      assert.equal(String(yaml.stdout).match(/^- cluster: /gm)?.length, 1, String(yaml.stdout));
      const text = await who.kport(['recordings', 'ls']);
      const [header, ...rows] = String(text.stdout)
        .trimEnd()
        .split('\n')
        .map((l) => l.split('\t'));
      assert.deepEqual(header, ['Session ID', 'User', 'Cluster', 'Pod', 'Started', 'Duration', 'Size']);
      assert.deepEqual(
        rows.find((r) => r[0] === 's-ls-a')?.filter((_, i) => i !== 4 && i !== 6),
        ['s-ls-a', 'alice', 'prod', 'default/web-0', '1m23s'],
        label,
      );
    }
    const refused = await alice.kport(['recordings', 'ls']);
    assert.equal(refused.exitCode, 4, String(refused.stderr));
    assert.equal(
      String(refused.stderr).trim(),
      `ERROR: The kport server at ${server.address} refused: user alice (access) may not list session resources (no role allows it).`,
    );
    const badLimit = await audrey.kport(['recordings', 'ls', '--limit', '0']);
    assert.equal(badLimit.exitCode, 2);
    assert.match(String(badLimit.stderr), /--limit is a whole number from 1 to 10000/);
  });

  test("kport play keeps the session's own timing, and --speed scales it: output never comes before its time, and 50x is far faster than the session was", async () => {
    await record(server, 's-timed', [
      [0, 'one\r\n'],
      [0.6, 'two\r\n'],
      [1.8, 'three\r\n'],
    ]);
    await record(server, 's-long', [
      [0, 'x\r\n'],
      [10, 'y\r\n'],
      [20, 'z\r\n'],
    ]);
    const env = { HOME: server.dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(server.dir, 'kport.yaml') };
    // On the server's host, from the data dir: real time.
    const real = await timedPlay(env, server.dir, ['s-timed']);
    assert.equal(real.exitCode, 0, real.stderr);
    assert.equal(real.pieces.map((p) => p.text).join(''), 'one\r\ntwo\r\nthree\r\n');
    // Sleeps never end early: each piece comes at its time or later. Seen from here, the first piece
    // can reach this process late by a pipe's delivery, which shortens the gaps seen: 150 ms for that.
    const slack = 150;
    assert.ok(arrival(real.pieces, 'two') >= 600 - slack, `two at ${arrival(real.pieces, 'two')} ms`);
    assert.ok(arrival(real.pieces, 'three') >= 1800 - slack, `three at ${arrival(real.pieces, 'three')} ms`);
    // 20 s of session at 50x is 0.4 s: at least that, and nowhere near the 20 s it took.
    const fast = await timedPlay(env, server.dir, ['s-long', '--speed', '50']);
    assert.equal(fast.exitCode, 0, fast.stderr);
    const z = arrival(fast.pieces, 'z');
    assert.ok(z >= 400 - slack && z < 10_000, `z at ${z} ms`);
  });
});
