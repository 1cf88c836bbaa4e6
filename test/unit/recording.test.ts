// The session recorder on real WebSocket frames (built by ws's Sender, as kubectl and the apiserver
// frame them), the asciicast it writes, and the decision the routing asks before an exec starts.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ws from 'ws';
import { RoleSet } from '../../src/roles/evaluate.ts';
import { parseRole } from '../../src/resources/role-check.ts';
import { parseCast } from '../../src/recordings/asciicast.ts';
import { recordingDecision, sessionTarget, SPDY_REFUSAL } from '../../src/server/events/recording/decision.ts';
import { SessionRecorder, type SessionMeta } from '../../src/server/events/recording/recorder.ts';
import { openRecording } from '../../src/recordings/store.ts';
import { tempDir } from '../peers/process.ts';

const { Sender } = ws as unknown as {
  Sender: { frame(data: Buffer | string, opts: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1?: boolean }): Buffer[] };
};

/** One WebSocket message on a Kubernetes channel; the client's are masked, as RFC 6455 requires. */
const frame = (channel: number, data: string | Buffer, from: 'client' | 'server', opcode = 2) =>
  Buffer.concat(Sender.frame(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), { fin: true, opcode, mask: from === 'client', readOnly: false }));
const RESPONSE_101 =
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n';

const meta = (sessionId: string, protocol = 'v5.channel.k8s.io,v4.channel.k8s.io'): SessionMeta => ({
  sessionId,
  person: 'alice',
  cluster: 'prod',
  kubeUser: 'alice',
  kubeGroups: ['developers', 'system:authenticated'],
  namespace: 'default',
  pod: 'web-0',
  container: 'app',
  command: 'sh',
  protocol,
});

/** A recording read back as `kport play` reads it: streamed. */
async function readBack(dir: string, id: string): Promise<string> {
  const { stream } = await openRecording(dir, id);
  let text = '';
  for await (const chunk of stream) text += chunk;
  return text;
}

function harness(opts: { maxSessionBytes?: number; budget?: { total: number; perUser: number } } = {}) {
  const dir = join(tempDir('recordings'), 'server', 'recordings');
  let clock = 0;
  const events: Array<Record<string, unknown>> = [];
  const recorder = new SessionRecorder({
    dir,
    audit: { record: async (e) => void events.push(e as Record<string, unknown>) },
    log: () => {},
    clock: () => clock,
    ...opts,
  });
  return { dir, recorder, events, tick: (ms: number) => (clock += ms) };
}

test('an exec over v5.channel.k8s.io is recorded as asciicast v2: the header has the first size, stdout and stderr are "o" events in time order, later resizes "r", stdin is not recorded; 0600 in a 0700 dir', async () => {
  const { dir, recorder, events, tick } = harness();
  const session = recorder.start(meta('s-1'));
  assert.equal(session.recorded, true);
  session.fromUpstream(Buffer.from(RESPONSE_101));
  // kubectl sends the terminal's size first, then what is typed.
  session.fromClient(frame(4, JSON.stringify({ Width: 120, Height: 40 }), 'client'));
  tick(10);
  session.fromClient(frame(0, 'secret-password\n', 'client'));
  tick(250);
  // One frame split across two chunks, and a UTF-8 character split across two frames.
  const prompt = frame(1, '$ ls\r\n', 'server');
  session.fromUpstream(prompt.subarray(0, 3));
  session.fromUpstream(prompt.subarray(3));
  const euro = Buffer.from('€');
  tick(250);
  session.fromUpstream(Buffer.concat([frame(1, euro.subarray(0, 1), 'server'), frame(2, 'oops\r\n', 'server')]));
  tick(1);
  session.fromUpstream(frame(1, euro.subarray(1), 'server'));
  tick(500);
  session.fromClient(frame(4, JSON.stringify({ Width: 100, Height: 30 }), 'client'));
  // A ping from the client and the v5 close signal are not output.
  session.fromClient(Buffer.concat(Sender.frame(Buffer.from('hi'), { fin: true, opcode: 9, mask: true, readOnly: false })));
  session.fromClient(frame(255, Buffer.from([0]), 'client'));
  tick(1000);
  await session.end('the client closed the connection');

  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 's-1.cast')).mode & 0o777, 0o600);
  const text = readFileSync(join(dir, 's-1.cast'), 'utf8');
  const cast = parseCast(text);
  assert.equal(cast.header.version, 2);
  assert.deepEqual([cast.header.width, cast.header.height], [120, 40]);
  assert.match(cast.header.title ?? '', /alice on prod: exec default\/web-0 -c app -- sh/);
  assert.deepEqual(
    cast.events.map(([, code, data]) => [code, data]),
    [
      ['o', '$ ls\r\n'],
      ['o', 'oops\r\n'],
      ['o', '€'],
      ['r', '100x30'],
    ],
  );
  const times = cast.events.map(([t]) => t);
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    'times never go back',
  );
  assert.ok(Math.abs(times[0]! - 0.26) < 1e-6, `the first output at 0.26 s: ${times[0]}`);
  assert.doesNotMatch(text, /secret-password/);

  const start = events.find((e) => e.type === 'session.start')!;
  const end = events.find((e) => e.type === 'session.end')!;
  assert.deepEqual([start.session_id, start.user, start.cluster, start.kube_user, start.pod, start.recorded], ['s-1', 'alice', 'prod', 'alice', 'web-0', true]);
  assert.deepEqual(start.kube_groups, ['developers', 'system:authenticated']);
  assert.equal(end.recorded, true);
  assert.equal(end.bytes, Buffer.byteLength(text));
  assert.equal(end.duration_ms, 2011);
  assert.equal(end.reason, 'the client closed the connection');
  assert.equal(await readBack(dir, 's-1'), text);
});

test("the client's bytes are read, never changed: they are the very buffers that go on to the cluster (ws unmasks a frame in place)", async () => {
  const { recorder } = harness();
  const session = recorder.start(meta('s-masked'));
  session.fromUpstream(Buffer.from(RESPONSE_101));
  // Whole frames in one chunk, several in one chunk, and one split across two chunks.
  const resize = frame(4, JSON.stringify({ Width: 80, Height: 24 }), 'client');
  const typed = frame(0, 'echo recorded-$((6*7))\n', 'client');
  const two = Buffer.concat([frame(0, 'ls\n', 'client'), frame(4, JSON.stringify({ Width: 100, Height: 30 }), 'client')]);
  const split = frame(0, 'exit\n', 'client');
  const chunks = [resize, typed, two, split.subarray(0, 4), split.subarray(4)];
  const sent = chunks.map((c) => Buffer.from(c));
  for (const chunk of chunks) session.fromClient(chunk);
  await session.end('the client closed the connection');
  for (const [i, chunk] of chunks.entries())
    assert.ok(chunk.equals(sent[i]!), `chunk ${i} is unchanged: ${chunk.toString('hex')} was ${sent[i]!.toString('hex')}`);
  // And they were read: the later resize is in the recording.
  assert.deepEqual(
    parseCast(readFileSync(join(recorder.dir, 's-masked.cast'), 'utf8')).events.map(([, code, data]) => [code, data]),
    [['r', '100x30']],
  );
});

test('SPDY and unknown protocols are passed through unrecorded, and their session.start and session.end say recorded: false and why; no file is made', async () => {
  const { dir, recorder, events } = harness();
  for (const [id, protocol] of [
    ['spdy', 'SPDY/3.1'],
    ['b', 'v9.weird.example'],
    ['../../etc/x', 'v5.channel.k8s.io'],
  ] as const) {
    const session = recorder.start(meta(id, protocol));
    assert.equal(session.recorded, false, protocol);
    session.fromUpstream(Buffer.from(RESPONSE_101));
    session.fromUpstream(frame(1, 'out', 'server'));
    await session.end();
  }
  assert.deepEqual(readdirSync(dir), []);
  const starts = events.filter((e) => e.type === 'session.start');
  assert.deepEqual(
    starts.map((e) => e.recorded),
    [false, false, false],
  );
  assert.match(String(starts[0]!.reason), /SPDY exec and attach are passed through unrecorded: kubectl 1\.30 and later speak WebSocket/);
  assert.match(String(starts[2]!.reason), /cannot name a file/);
  assert.deepEqual(
    events.filter((e) => e.type === 'session.end').map((e) => e.recorded),
    [false, false, false],
  );
});

test('the per-session cap stops the recording with a marker, the session.end says so; the total cap leaves new sessions unrecorded', async () => {
  const { dir, recorder, events, tick } = harness({ maxSessionBytes: 4096, budget: { total: 6000, perUser: 6000 } });
  const session = recorder.start(meta('big'));
  session.fromUpstream(Buffer.from(RESPONSE_101));
  session.fromClient(frame(4, '{"Width":80,"Height":24}', 'client'));
  for (let i = 0; i < 100; i++) {
    tick(5);
    session.fromUpstream(frame(1, `line ${i} ${'x'.repeat(200)}\r\n`, 'server'));
  }
  await session.end();
  const text = readFileSync(join(dir, 'big.cast'), 'utf8');
  const cast = parseCast(text);
  const last = cast.events.at(-1)!;
  assert.equal(last[1], 'm');
  assert.match(last[2], /kport stopped recording: the recording reached its cap of 4096 bytes/);
  assert.ok(
    Buffer.byteLength(text) <= 4096 + 200 && Buffer.byteLength(text) > 4096 - 300,
    `output up to the cap is kept, then the marker: ${Buffer.byteLength(text)} bytes`,
  );
  assert.match(String(events.find((e) => e.type === 'session.end')!.reason), /recording stopped early: the recording reached its cap/);

  // What is left of the total cannot hold another session's output.
  const second = recorder.start(meta('second'));
  second.fromUpstream(Buffer.from(RESPONSE_101));
  for (let i = 0; i < 25; i++) second.fromUpstream(frame(1, 'y'.repeat(100), 'server'));
  await second.end();
  assert.ok(recorder.budget.usage('alice').total <= 6000 + 300, String(recorder.budget.usage('alice').total));
  const third = recorder.start(meta('third'));
  assert.equal(third.recorded, false);
  await third.end();
  assert.match(
    String(events.filter((e) => e.type === 'session.start').at(-1)!.reason),
    /no room in the recording budget \(.*all recordings take \d\.\d KiB of the server's 5\.9 KiB/,
  );
});

test('frames the upstream cannot have sent, a refused upgrade, and a link where the file would go stop the recording without touching anything else', async () => {
  const { dir, recorder, events } = harness();
  const garbage = recorder.start(meta('garbage'));
  garbage.fromUpstream(Buffer.from(RESPONSE_101));
  garbage.fromUpstream(frame(1, 'before\r\n', 'server'));
  // A masked frame from the server side breaks RFC 6455.
  garbage.fromUpstream(frame(1, 'masked', 'client'));
  garbage.fromUpstream(frame(1, 'after\r\n', 'server'));
  await garbage.end();
  const cast = parseCast(readFileSync(join(dir, 'garbage.cast'), 'utf8'));
  assert.deepEqual(
    cast.events.map(([, c, d]) => [c, d.replace(/\(.*\)/, '(…)')]),
    [
      ['o', 'before\r\n'],
      ['m', 'kport stopped recording: unreadable WebSocket frames (…)'],
    ],
  );

  const refused = recorder.start(meta('refused'));
  refused.fromUpstream(Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
  await refused.end();
  assert.match(String(events.filter((e) => e.type === 'session.end').at(-1)!.reason), /the upgrade was answered 403/);

  writeFileSync(join(dir, '..', 'target'), 'keep');
  symlinkSync(join(dir, '..', 'target'), join(dir, 'linked.cast'));
  const linked = recorder.start(meta('linked'));
  linked.fromUpstream(Buffer.from(RESPONSE_101));
  linked.fromUpstream(frame(1, 'x', 'server'));
  await linked.end();
  assert.equal(readFileSync(join(dir, '..', 'target'), 'utf8'), 'keep');
  await assert.rejects(openRecording(dir, 'linked'), /no recording of session linked/);
  await assert.rejects(openRecording(dir, '../target'), /not a session id/);
});

test('require_session_recording: SPDY exec is refused with the fix named, WebSocket is recorded; only roles that allow the cluster (or no cluster at all) require it', () => {
  const role = (name: string, allow: Record<string, unknown>, options?: Record<string, unknown>) =>
    parseRole({ kind: 'role', version: 'v7', metadata: { name }, spec: { allow, ...(options && { options }) } });
  const prodRecorded = role('prod', { kubernetes_labels: { env: 'prod' } }, { require_session_recording: true });
  const devFree = role('dev', { kubernetes_labels: { env: 'dev' } });
  const set = new RoleSet([prodRecorded, devFree], 'alice');
  const prod = { env: 'prod' };
  const dev = { env: 'dev' };
  assert.deepEqual(recordingDecision('SPDY/3.1', set, prod), { record: false, required: true, refusal: SPDY_REFUSAL });
  assert.match(SPDY_REFUSAL, /kubectl 1\.30 or later .*KUBECTL_REMOTE_COMMAND_WEBSOCKETS/);
  assert.deepEqual(recordingDecision('v5.channel.k8s.io', set, prod), { record: true, required: true });
  assert.deepEqual(recordingDecision('SPDY/3.1', set, dev), { record: false, required: false });
  // An option-only role applies everywhere; yes reads as true.
  const everywhere = new RoleSet([devFree, role('audited', {}, { require_session_recording: 'yes' })], 'alice');
  assert.equal(recordingDecision('SPDY/3.1', everywhere, dev).refusal, SPDY_REFUSAL);
  assert.throws(
    () => role('bad', {}, { require_session_recording: 'sometimes' }),
    /spec\.options\.require_session_recording: expected true or false, got "sometimes"/,
  );
});

test('sessionTarget reads the pod, container and command of exec and attach paths, and nothing else', () => {
  assert.deepEqual(sessionTarget('/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=ls&container=app&stdin=true&stdout=true&tty=true'), {
    kind: 'exec',
    namespace: 'default',
    pod: 'web-0',
    container: 'app',
    command: 'sh -c ls',
    tty: true,
  });
  assert.deepEqual(sessionTarget('/k/prod/api/v1/namespaces/ns/pods/p/attach?stdin=true'), { kind: 'attach', namespace: 'ns', pod: 'p', tty: false });
  assert.equal(sessionTarget('/api/v1/namespaces/ns/pods/p/portforward'), undefined);
  assert.equal(sessionTarget('/api/v1/namespaces/ns/pods/p/log'), undefined);
});
