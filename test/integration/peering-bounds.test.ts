// Proxy peering's bounds on one agent (issue 29, attack 3 findings 1 and 2), with real processes
// only: two `kport server start` on one etcd, a Kubernetes agent tunnelled to server B only, and
// alice and carol (the same role) logged in to server A.
// 1. Alice opening watches through A (A -> B -> agent) and through B at once holds at most her
//    share of the agent's tunnel (256, counted at B, where every stream onto the tunnel passes); past
//    it each of her requests, through either server, gets the clear "busy" answer, never a bare
//    reset; carol still gets through.
// 2. Tunnel records naming servers that do not answer as the agent's holder (one at a closed port, one
//    at an address that is not a peer listener, one that never answers), newer than the live one: requests still succeed
//    through the live holder. When no holder answers, the person's 502 names no address, no server id
//    and no TLS text; A's log has them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Etcd3, type Namespace } from 'etcd3';
import { invitedPerson } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { freePort, havePeer, waitFor } from '../peers/process.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;
const PREFIX = '/kport-peering-bounds';
const WATCH = `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps?watch=1&timeoutSeconds=600`;

describe('proxy peering: one agent shared by people on several servers', { concurrency: false, timeout: 900_000 }, () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let store: Namespace;
  let f: Fixture;
  let a: TestServer;
  let alice: Person;
  let carol: Person;
  const sessions: ClientHttp2Session[] = [];
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl, kwok and etcd', PEERS());
  const serverId = (s: TestServer) => readFileSync(join(s.dir, 'data', 'server', 'host_id'), 'utf8').trim();

  /** `who`'s HTTP/2 connection to `server`, with the certificate they got at A (the servers share its CA). */
  const connectAs = (who: Person, server: TestServer): ClientHttp2Session => {
    const dir = join(who.home, '.kport', 'profiles', a.address.replace(':', '_'));
    const session = h2connect(`https://${server.address}`, {
      cert: readFileSync(join(dir, 'cert.pem')),
      key: readFileSync(join(dir, 'key.pem')),
      ca: readFileSync(join(dir, 'ca.pem')),
      servername: 'localhost',
      peerMaxConcurrentStreams: 1000,
    });
    session.on('error', () => {});
    sessions.push(session);
    return session;
  };
  /** `n` watches of `who` through `server` on one connection: each one's status (0: closed unanswered) and refusal body. */
  const flood = (who: Person, server: TestServer, n: number) => {
    const session = connectAs(who, server);
    const seen: Array<{ status: number; body: string; closed: boolean }> = [];
    for (let i = 0; i < n; i++) {
      const one = { status: 0, body: '', closed: false };
      seen.push(one);
      const req = session.request({ ':path': `${WATCH}&n=${i}` });
      req.on('response', (h) => {
        one.status = Number(h[':status']);
        if (one.status !== 200) req.on('data', (c: Buffer) => (one.body += c));
        else req.resume();
      });
      req.on('error', () => {});
      req.on('close', () => (one.closed = true));
    }
    return seen;
  };

  before(async (t) => {
    if (!have(t as never)) return;
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
    store = client.namespace(PREFIX);
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: PREFIX };
    f = await startFixture({ roles: ROLES, server: { storage } });
    a = await startServer({ storage, sealKeyFrom: f.server });
    alice = await invitedPerson(a, 'alice', ['prod-dev']);
    carol = await invitedPerson(a, 'carol', ['prod-dev']);
    for (const who of [alice, carol]) assert.equal((await who.kport(['kube', 'config', CLUSTER])).exitCode, 0);
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    await f?.stop();
    await a?.stop('SIGKILL');
    client?.close();
    await etcd?.stop();
  });

  test("alice's watches through A and B together stop at her share of the agent's tunnel (256 of 900); past it, through either server, the clear 'busy' answer; carol still gets through", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    assert.deepEqual(Object.keys(await store.getAll().prefix('/tunnels/').strings()), [`/tunnels/${agent.hostId()}/${serverId(f.server)}`]);
    // 200 through B, then 200 through A (A -> B -> agent): under the per-server bound (256) at both, 400 on the one agent.
    const viaB = flood(alice, f.server, 200);
    await waitFor("alice's watches through B open", async () => viaB.every((w) => w.status === 200) || undefined, { timeoutMs: 60_000 });
    const viaA = flood(alice, a, 200);
    const all = [...viaA, ...viaB];
    await waitFor('every watch of alice answered or refused', async () => all.every((w) => w.status === 200 || w.closed) || undefined, {
      timeoutMs: 120_000,
    });
    const count = (seen: typeof all, status: number) => seen.filter((w) => w.status === status).length;
    const summary = JSON.stringify({ a: [count(viaA, 200), count(viaA, 502)], b: [count(viaB, 200), count(viaB, 502)] });
    assert.equal(count(all, 200), 256, `alice holds her share of the agent and no more: ${summary}`);
    // Every refusal is an answer, through the peer hop too: none is a stream closed unanswered.
    assert.equal(count(all, 502), 400 - 256, summary);
    await waitFor('the refusals read', async () => all.every((w) => w.status === 200 || w.closed) || undefined, { timeoutMs: 10_000 });
    // Past her share, through the peer hop: the clear 'busy' answer, as at the holder itself, not a bare reset.
    assert.equal(count(viaA, 200), 56, summary);
    for (const w of viaA.filter((x) => x.status === 502)) assert.match(w.body, /the agent serving this cluster is busy/);
    const atB = flood(alice, f.server, 1);
    await waitFor('one more through B refused', async () => atB[0]!.closed || undefined, { timeoutMs: 30_000 });
    assert.equal(atB[0]!.status, 502);
    assert.match(atB[0]!.body, /the agent serving this cluster is busy/);

    // Carol, on the same agent, through A: a list and a watch.
    const k = personKubectl(carol.home);
    const pods = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    const carols = flood(carol, a, 1);
    await waitFor("carol's watch", async () => carols[0]!.status || undefined, { timeoutMs: 30_000 });
    assert.equal(carols[0]!.status, 200, carols[0]!.body);

    // Alice's watches gone, her share is free again.
    for (const session of sessions.splice(0)) session.destroy();
    await waitFor(
      'alice served again',
      async () => (await personKubectl(alice.home).run(['get', 'pods', '-n', 'apps', '-o', 'name'])).code === 0 || undefined,
      { timeoutMs: 30_000 },
    );
  });

  test('tunnel records naming servers that do not answer, newer than the live one, cost attempts, not the agent; with no holder answering, the 502 names no address or server id (the log does)', async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    const live = `/tunnels/${agent.hostId()}/${serverId(f.server)}`;
    // One at a port nothing listens on, one at B's main listener (TLS, but no peer certificate): written after the live one, so tried first.
    const closed = await freePort();
    // And one that takes the connection and never answers (a partition: no refusal ever comes).
    const silent = createServer((socket) => socket.on('error', () => {}));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => silent.close());
    const fakes = [
      { id: 'fake-closed-port', addr: `127.0.0.1:${closed}` },
      { id: 'fake-not-a-peer', addr: f.server.address },
      { id: 'fake-silent', addr: `127.0.0.1:${(silent.address() as AddressInfo).port}` },
    ];
    for (const fake of fakes) {
      await store.put(`/servers/${fake.id}`).value(JSON.stringify({ server_id: fake.id, peer_addr: fake.addr, started: new Date().toISOString() }));
      await store.put(`/tunnels/${agent.hostId()}/${fake.id}`).value('{}');
    }
    const k = personKubectl(alice.home);
    // A tries the fake holders (its log names each) once its watch delivered their records; every request succeeds throughout.
    const failures: string[] = [];
    await waitFor(
      "A's attempts at both fake holders (or a failed request)",
      async () => {
        const res = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
        if (res.code !== 0) failures.push(res.stderr);
        return failures.length > 0 || fakes.every((x) => a.log.includes(`reaching server ${x.id}`)) || undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.deepEqual(failures, [], `every request succeeded while A tried the fake holders; A's log: ${a.log.slice(-4000)}`);
    // The holders that failed are tried last for a while: requests go straight to the live one.
    for (let i = 0; i < 8; i++) {
      const started = performance.now();
      const res = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
      assert.equal(res.code, 0, `request ${i}: ${res.stderr}`);
      assert.equal(res.stdout, 'pod/web\n');
      assert.ok(performance.now() - started < 5000, `request ${i} took ${Math.round(performance.now() - started)} ms`);
    }
    for (const fake of fakes) assert.ok(a.log.includes(`reaching server ${fake.id} at ${fake.addr}`), `A's log names ${fake.id}: ${a.log.slice(-3000)}`);

    // The live record gone: only holders that do not answer. The person's answer is kport's sentence alone.
    const kept = (await store.get(live).string())!;
    await store.delete().key(live);
    try {
      const failed = await waitFor(
        "A's 502",
        async () => {
          const res = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
          return res.code !== 0 ? res : undefined;
        },
        { timeoutMs: 20_000 },
      );
      assert.match(failed.stderr, /kport could not reach any agent serving this cluster: run the command again/);
      for (const detail of [...fakes.flatMap((x) => [x.id, x.addr]), '127.0.0.1', serverId(f.server), serverId(a), 'certificate', 'peer'])
        assert.ok(!failed.stderr.includes(detail), `the answer names ${detail}: ${failed.stderr}`);
    } finally {
      await store.put(live).value(kept);
      for (const fake of fakes) {
        await store.delete().key(`/tunnels/${agent.hostId()}/${fake.id}`);
        await store.delete().key(`/servers/${fake.id}`);
      }
    }
  });
});
