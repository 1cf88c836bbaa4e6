// Issue 29, draining with an agent connected, with real processes: two `kport server start` on one
// etcd (the same seal.key), a Kubernetes agent and a person's kubectl reaching them through one
// address (a TCP forwarder standing in for the load balancer: the first server that takes the
// connection), kube-apiserver and kwok behind the agent. SIGTERM to the server holding the agent's
// tunnel: the agent dials a new tunnel (landing on the other server) before the old one closes, an
// exec session open through the draining server finishes, the server exits 0 once it has; the
// person's next kubectl goes through the other server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { diagGet, metricValue } from '../helpers/diag.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { freePort, havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

describe('SIGTERM to the server holding an agent tunnel, two servers on one etcd behind one address', { concurrency: false, timeout: 600_000 }, () => {
  let etcd: EtcdCluster;
  let f: Fixture;
  let other: TestServer;
  let front: Server;
  let alice: Person;
  const diag = { a: '', b: '' };
  const tunnels = async (address: string) => metricValue((await diagGet(address, '/metrics')).body, 'kport_reverse_tunnels_open');
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl, kwok and etcd', [...PEERS(), BINARIES.etcd()]);

  before(async (t) => {
    if (!have(t as never)) return;
    etcd = await startEtcd();
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: `/kport-${randomUUID()}` };
    diag.a = `127.0.0.1:${await freePort()}`;
    diag.b = `127.0.0.1:${await freePort()}`;
    f = await startFixture({ agents: 0, roles: ROLES, server: { storage, teleport: { diag_addr: diag.a, shutdown_grace: '30s' } } });
    other = await startServer({ storage, sealKeyFrom: f.server, teleport: { diag_addr: diag.b, shutdown_grace: '3s' } });
    const ports = [f.server.port, other.port];
    front = await firstThatAnswers(ports);
    // People and agents are given the one address in front.
    f.server.address = `127.0.0.1:${(front.address() as { port: number }).port}`;
    await f.waitServed([await f.addAgent()]);
    // Something for a watch to list first.
    await f.admin('create', 'configmap', 'listed', '-n', 'apps');
    alice = await invitedPerson(f.server, 'alice', ['prod-dev']);
    const config = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(config.exitCode, 0, String(config.stderr));
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) process.stderr.write(`--- other server\n${other?.log.slice(-4000)}\n`);
    await other?.stop('SIGKILL');
    front?.close();
    await f?.stop();
    await etcd?.stop();
  });

  test('the agent dials a new tunnel at the GOAWAY, before the old one closes; an exec open through the draining server finishes; it exits 0 then; the next kubectl goes through the other', async (t) => {
    if (!have(t)) return;
    assert.equal(await tunnels(diag.a), 1);
    assert.equal(await tunnels(diag.b), 0);
    const kubectl = personKubectl(alice.home);
    const listed = await kubectl.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(listed.code, 0, listed.stderr);
    const kube = await diagGet(diag.a, '/metrics');
    assert.ok((metricValue(kube.body, 'kport_kube_requests_total{outcome="2xx"}') ?? 0) > 0, kube.body);

    const exec = { out: '', code: undefined as number | undefined, endedAt: 0 };
    const proc = kubectl.spawn(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo started; sleep 6; echo finished']);
    proc.stdout!.on('data', (c: Buffer) => (exec.out += c));
    void proc.then((r) => ((exec.code = r.exitCode ?? -1), (exec.endedAt = Date.now())));
    t.after(() => void proc.kill('SIGKILL'));
    await waitFor('the exec to start', async () => exec.out.includes('started') || exec.code !== undefined, { timeoutMs: 60_000 });
    assert.equal(exec.code, undefined, exec.out);
    const upgrades = await diagGet(diag.a, '/metrics');
    assert.equal(metricValue(upgrades.body, 'kport_kube_open_requests{kind="upgrade"}'), 1, upgrades.body);

    const draining = f.server.proc!;
    let exitedAt: number | undefined;
    void draining.then(() => (exitedAt = Date.now()));
    const signalled = Date.now();
    // The signal alone (execa's kill() would follow it with SIGKILL after 5 s).
    process.kill(draining.pid!, 'SIGTERM');

    assert.deepEqual(
      await waitFor('A to say draining', async () => {
        const res = await diagGet(diag.a, '/readyz');
        return res.status === 503 && res;
      }),
      { status: 503, body: 'not ready: draining\n' },
    );
    await waitFor('the agent to open a tunnel on the other server', async () => (await tunnels(diag.b)) === 1, { timeoutMs: 15_000 });
    const redialed = Date.now() - signalled;
    // The old tunnel is still carrying the exec: nothing has ended yet.
    assert.equal(exec.code, undefined, 'the exec was still running when the new tunnel opened');
    assert.equal(exitedAt, undefined, 'the draining server was still up when the new tunnel opened');
    assert.match(f.agents[0]!.log, /the server is stopping \(GOAWAY\); dialing a new tunnel while this one finishes its open requests/);

    const result = await draining;
    assert.equal(result.exitCode, 0, f.server.log.slice(-3000));
    await waitFor('the exec to end', async () => exec.code !== undefined, { timeoutMs: 10_000 });
    assert.equal(exec.code, 0, exec.out);
    assert.match(exec.out, /started\nfinished\n/);
    assert.ok(exitedAt! >= exec.endedAt - 1000, 'the server exited once the exec had finished');
    assert.ok(exitedAt! - signalled < 30_000, `exited ${exitedAt! - signalled} ms after SIGTERM, within the 30 s grace`);
    t.diagnostic(`new tunnel on the other server ${redialed} ms after SIGTERM; the draining server exited after ${exitedAt! - signalled} ms`);

    // The same address, now the other server: the agent is reached there.
    const again = await kubectl.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /pod\/web/);
  });

  test("what is still open when the grace ends is ended with kport's sentence (an exec exits 1 saying so, a watch prints it), and the server exits 0", async (t) => {
    if (!have(t)) return;
    // The first server back (first in line at the address), the agent's tunnel still on the other, whose grace is 3 s.
    await f.server.start();
    assert.equal(await tunnels(diag.b), 1);
    const kubectl = personKubectl(alice.home);
    const spawn = (args: string[]) => {
      const run = { out: '', err: '', code: undefined as number | undefined, proc: kubectl.spawn(args) };
      run.proc.stdout!.on('data', (c: Buffer) => (run.out += c));
      run.proc.stderr!.on('data', (c: Buffer) => (run.err += c));
      void run.proc.then((r) => (run.code = r.exitCode ?? -1));
      t.after(() => void run.proc.kill('SIGKILL'));
      return run;
    };
    // Both open through the other server: the address gives it only while the first refuses, so they start before.
    await f.server.stop('SIGKILL');
    const exec = spawn(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo started; exec sleep 300']);
    const watch = spawn(['get', 'configmaps', '-n', 'apps', '--watch']);
    await waitFor('the exec to start', async () => exec.out.includes('started') || exec.code !== undefined, { timeoutMs: 60_000 });
    await waitFor('the watch to list', async () => watch.out.includes('listed') || watch.code !== undefined, { timeoutMs: 60_000 });
    assert.equal(exec.code, undefined, exec.err);
    assert.equal(watch.code, undefined, watch.err);
    const open = (await diagGet(diag.b, '/metrics')).body;
    assert.equal(metricValue(open, 'kport_kube_open_requests{kind="upgrade"}'), 1, open);
    assert.equal(metricValue(open, 'kport_kube_open_requests{kind="watch"}'), 1, open);
    await f.server.start();

    const draining = other.proc!;
    let exitedAt: number | undefined;
    void draining.then(() => (exitedAt = Date.now()));
    const signalled = Date.now();
    process.kill(draining.pid!, 'SIGTERM');
    await waitFor('the agent to open a tunnel on the first server', async () => (await tunnels(diag.a)) === 1, { timeoutMs: 15_000 });
    assert.equal(exec.code, undefined, 'the exec is still open while the grace runs');
    const result = await draining;
    assert.equal(result.exitCode, 0, other.log.slice(-3000));
    const took = exitedAt! - signalled;
    // The grace, then a second for the endings to reach their clients.
    assert.ok(took >= 3000 && took < 6000, `exited ${took} ms after SIGTERM, with a 3 s grace`);
    await waitFor('the exec and the watch to end', async () => exec.code !== undefined && watch.code !== undefined, { timeoutMs: 10_000 });
    const sentence = /the kport server is stopping \(a restart or an upgrade\): run this command again/;
    assert.equal(exec.code, 1, exec.err);
    assert.match(exec.err, sentence);
    assert.match(watch.out + watch.err, sentence);
    t.diagnostic(`the draining server ended what was open and exited ${took} ms after SIGTERM (grace 3 s)`);
  });
});

/**
 * A TCP forwarder on one address: each connection goes to the first of `ports` that accepts it, so a
 * server that stopped listening (draining) is passed over, as a load balancer's failed connect is.
 */
async function firstThatAnswers(ports: number[]): Promise<Server> {
  const server = createServer((client: Socket) => {
    client.pause();
    client.on('error', () => {});
    const attempt = (i: number) => {
      const upstream = connect({ host: '127.0.0.1', port: ports[i]! });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (!connected && i + 1 < ports.length) return attempt(i + 1);
        client.destroy();
      });
      upstream.on('close', () => connected && client.destroy());
      client.on('close', () => upstream.destroy());
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
