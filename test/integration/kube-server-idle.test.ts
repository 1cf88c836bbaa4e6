// Quiet streams through the server outlive its idle timeout (issue: a quiet watch and `logs -f` were
// cut at 120 s, while the local proxy and the direct path held them for hours). The server runs with
// KPORT_IDLE_TIMEOUT=3s; each stream is held silent for several idle periods, then must still be
// open and still deliver. A connection with nothing open on it is still closed after the idle time.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { criLogLine } from '../peers/kwok.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const IDLE_MS = 3_000;
/** How long each stream is held with nothing on it: over three idle periods. */
const QUIET_MS = 10_000;

// The three tests hold their streams quiet at the same time (each on connections of its own, reading
// nothing the others write): 3 x QUIET_MS one after another was most of this file's 44 s.
describe('quiet streams through the server past its idle timeout', { concurrency: true, timeout: 600_000 }, () => {
  let f: Fixture;
  let alice: Person;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl and kwok', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: ROLES, serverEnv: { KPORT_IDLE_TIMEOUT: `${IDLE_MS / 1000}s` } });
    await f.admin('create', 'namespace', 'quiet');
    alice = await invitedPerson(f.server, 'alice', ['prod-dev']);
    const wrote = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(wrote.exitCode, 0, String(wrote.stderr));
    await f.admin('create', 'rolebinding', 'developers', '--clusterrole=developer', '--group=developers', '-n', 'quiet');
  });
  after(async () => f?.stop());

  test('kubectl: a quiet watch (get -w and get --raw ?watch=1), a quiet logs -f and an idle port-forward stay open, then deliver', async (t) => {
    if (!have(t)) return;
    const k = personKubectl(alice.home);
    const watch = k.spawn(['get', 'configmaps', '-n', 'quiet', '--watch', '-o', 'name']);
    const raw = k.spawn(['get', '--raw', '/api/v1/namespaces/quiet/configmaps?watch=1']);
    const follow = k.spawn(['logs', '-f', '-n', 'apps', 'web']);
    const forward = k.spawn(['port-forward', '-n', 'apps', 'pod/web', ':8080']);
    const procs = { watch, raw, follow, forward };
    const out = Object.fromEntries(Object.keys(procs).map((k) => [k, ''])) as Record<keyof typeof procs, string>;
    const exited: Partial<Record<keyof typeof procs, string>> = {};
    for (const [name, proc] of Object.entries(procs) as Array<[keyof typeof procs, (typeof procs)[keyof typeof procs]]>) {
      proc.stdout!.on('data', (c: Buffer) => (out[name] += c));
      proc.stderr!.on('data', (c: Buffer) => (out[name] += c));
      void proc.then((r) => (exited[name] = `exit ${r.exitCode}: ${out[name]}`));
    }
    t.after(async () => {
      for (const proc of Object.values(procs)) proc.kill('SIGKILL');
      await Promise.all(Object.values(procs));
    });
    await waitFor('the existing log lines', async () => out.follow.includes('second line\n') || exited.follow, { timeoutMs: 60_000 });
    const port = Number(
      await waitFor('the forwarding line', async () => out.forward.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1] ?? exited.forward, {
        timeoutMs: 60_000,
      }),
    );
    // A forwarded connection that carries a few bytes, then nothing for as long as the rest.
    const held = await echoSocket(port);
    assert.equal((await held.echo(Buffer.from('first'))).toString(), 'first');

    await sleep(QUIET_MS);
    assert.deepEqual(exited, {}, `streams ended while quiet for ${QUIET_MS} ms with the server's idle timeout at ${IDLE_MS} ms`);

    // Still open, and still delivering: an event, a log line, bytes on both forwarded connections.
    await f.admin('create', 'configmap', 'after-quiet', '-n', 'quiet');
    appendFileSync(f.logsFile, criLogLine('after the quiet'));
    await waitFor('the event through kubectl get -w', async () => out.watch.includes('configmap/after-quiet') || exited.watch, { timeoutMs: 30_000 });
    await waitFor('the event through get --raw', async () => out.raw.includes('"name":"after-quiet"') || exited.raw, { timeoutMs: 30_000 });
    await waitFor('the appended log line', async () => out.follow.includes('after the quiet\n') || exited.follow, { timeoutMs: 30_000 });
    const sent = randomBytes(64 * 1024);
    assert.ok((await held.echo(sent)).equals(sent), 'the forwarded connection held open carries bytes both ways');
    const fresh = await echoSocket(port);
    assert.ok((await fresh.echo(sent)).equals(sent), 'a new connection through the idle port-forward carries bytes both ways');
    held.socket.destroy();
    fresh.socket.destroy();
    assert.deepEqual(exited, {});
    assert.match(out.watch, /configmap\/after-quiet/);
    assert.match(out.raw, /"type":"ADDED"[^\n]*"name":"after-quiet"/);
    assert.match(out.follow, /after the quiet\n/);
  });

  test("kport kube login -- kubectl logs -f with a server profile: the local proxy's stream to the server stays open while quiet", async (t) => {
    if (!have(t)) return;
    const proc = alice.kport(['kube', 'login', CLUSTER, '--', BINARIES.kubectl(), 'logs', '-f', '-n', 'apps', 'web']);
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    proc.stderr!.on('data', (c: Buffer) => (out += c));
    let exited: string | undefined;
    void proc.then((r) => (exited = `exit ${r.exitCode}: ${out}`));
    t.after(async () => {
      proc.kill('SIGTERM');
      await proc;
    });
    await waitFor('the existing log lines', async () => out.includes('second line\n') || exited, { timeoutMs: 60_000 });
    await sleep(QUIET_MS);
    assert.equal(exited, undefined, "kube login's logs -f ended while quiet");
    appendFileSync(f.logsFile, criLogLine('through kube login after the quiet'));
    await waitFor('the appended line', async () => out.includes('through kube login after the quiet\n') || exited, { timeoutMs: 30_000 });
    assert.equal(exited, undefined);
  });

  test('raw HTTP/2 and HTTP/1.1: a connection holding a quiet watch stays; one with nothing open is closed after the idle time, and so is the first once its watch ends', async (t) => {
    if (!have(t)) return;
    const tls = credentials(alice, f.server.address);
    const path = `/k/${CLUSTER}/api/v1/namespaces/quiet/configmaps?watch=1`;

    // HTTP/2: one session with a watch, one with nothing open after a first request.
    const watching = h2(tls, f.server.port);
    const idle = h2(tls, f.server.port);
    t.after(() => (watching.session.destroy(), idle.session.destroy()));
    const stream = watching.session.request({ ':path': path });
    stream.on('error', () => {});
    let events = '';
    stream.on('data', (c: Buffer) => (events += c));
    await new Promise((resolve) => stream.once('response', resolve));
    await new Promise<void>((resolve, reject) => {
      const once = idle.session.request({ ':path': `/k/${CLUSTER}/api/v1/namespaces/quiet/configmaps` });
      once
        .on('error', reject)
        .resume()
        .once('end', () => resolve());
    });
    const started = Date.now();
    await waitFor('the idle HTTP/2 connection to close', async () => idle.closed, { timeoutMs: IDLE_MS * 4 });
    const took = Date.now() - started;
    assert.ok(took >= IDLE_MS - 500, `closed after ${took} ms, before the idle time (${IDLE_MS} ms)`);
    assert.ok(idle.goaway, 'the idle connection was told with a GOAWAY');

    // HTTP/1.1: a keep-alive socket with a watch in flight, and one left idle after its request.
    const h1 = h1Client(tls, f.server.port);
    t.after(() => h1.agent.destroy());
    const h1watch = await h1.get(path);
    let h1events = '';
    h1watch.res.on('data', (c: Buffer) => (h1events += c));
    const h1idle = await h1.get(`/k/${CLUSTER}/api/v1/namespaces/quiet/configmaps`);
    await new Promise((resolve) => h1idle.res.resume().once('end', resolve));
    let h1closed = false;
    h1idle.socket.once('close', () => (h1closed = true));
    await waitFor('the idle HTTP/1.1 connection to close', async () => h1closed, { timeoutMs: IDLE_MS * 4 });

    await sleep(QUIET_MS - (Date.now() - started));
    assert.equal(watching.closed, false, 'the HTTP/2 connection holding a quiet watch was closed');
    assert.equal(h1watch.socket.destroyed, false, 'the HTTP/1.1 connection holding a quiet watch was closed');
    await f.admin('create', 'configmap', 'raw-after-quiet', '-n', 'quiet');
    await waitFor('the event on HTTP/2', async () => events.includes('"name":"raw-after-quiet"'), { timeoutMs: 30_000 });
    await waitFor('the event on HTTP/1.1', async () => h1events.includes('"name":"raw-after-quiet"'), { timeoutMs: 30_000 });

    // The watch ends: now nothing is open on that connection, and it goes within about an idle time.
    stream.close();
    await waitFor('the HTTP/2 connection, its watch ended, to close', async () => watching.closed, { timeoutMs: IDLE_MS * 4 });
  });
});

/** A person's certificate, key and the server CA, from their profile. */
function credentials(who: Person, address: string) {
  const dir = join(who.home, '.kport', 'profiles', address.replace(':', '_'));
  return {
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    servername: 'localhost',
  };
}

function h2(tls: ReturnType<typeof credentials>, port: number): { session: ClientHttp2Session; closed: boolean; goaway: boolean } {
  const session = h2connect(`https://127.0.0.1:${port}`, tls);
  const state = { session, closed: false, goaway: false };
  session.on('error', () => {});
  session.once('goaway', () => (state.goaway = true));
  session.once('close', () => (state.closed = true));
  return state;
}

/** HTTP/1.1 (ALPN http/1.1) with keep-alive: each get on a socket of its own. */
function h1Client(tls: ReturnType<typeof credentials>, port: number) {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 2, ...tls, ALPNProtocols: ['http/1.1'] });
  return {
    agent,
    get: (path: string) =>
      new Promise<{ res: import('node:http').IncomingMessage; socket: Socket }>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path, agent, ...tls });
        req.once('response', (res) => resolve({ res, socket: req.socket as Socket }));
        req.once('error', reject);
        req.end();
      }),
  };
}

/** A TCP connection to a forwarded port that echoes: send, then read as many bytes back. */
async function echoSocket(port: number): Promise<{ socket: Socket; echo(data: Buffer): Promise<Buffer> }> {
  const socket = netConnect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  return {
    socket,
    echo: (data) =>
      new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let length = 0;
        const timer = setTimeout(() => reject(new Error(`port-forward: ${length} of ${data.length} bytes back in 30 s`)), 30_000);
        const onData = (c: Buffer) => {
          chunks.push(c);
          length += c.length;
          if (length < data.length) return;
          clearTimeout(timer);
          socket.off('data', onData);
          resolve(Buffer.concat(chunks));
        };
        socket.on('data', onData);
        socket.once('close', () => reject(new Error(`port-forward: the connection closed after ${length} of ${data.length} bytes`)));
        socket.write(data);
      }),
  };
}
