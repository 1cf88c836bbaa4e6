// Proxy peering (issue 29 "Agents reach a person through any server"), with real processes only: two
// `kport server start` on one etcd (each its own data dir, the same seal.key), a Kubernetes agent
// joined to and tunnelled to server B only, and alice logged in to server A. Her kubectl reaches the
// agent's kube-apiserver through A -> B -> agent; the cluster's audit names her and A audits the
// request. B's peer listener refuses an agent's host certificate and a server whose record is gone;
// when B is killed, A stops routing to B's agent within the lease's TTL, with the clear "no agent" answer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as h2connect, constants } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Etcd3, type Namespace } from 'etcd3';
import { invitedPerson } from '../helpers/login.ts';
import { forwardEcho, shellTwoLines } from '../helpers/terminal.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { auditEvents, joinByHand, kubeAgent, pinnedCa, startServer, type KubeAgent, type TestServer } from '../helpers/network.ts';
import { kubeconfigYaml } from '../peers/kube.ts';
import { Session } from '../helpers/person.ts';
import { PRESENCE } from '../../src/server/peer/peer-presence.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { havePeer, waitFor } from '../peers/process.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;
const PREFIX = '/kport-peering';
let STORAGE: Record<string, unknown>;

describe('proxy peering: a person on server A reaches an agent tunnelled to server B', { concurrency: false, timeout: 900_000 }, () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let store: Namespace;
  let f: Fixture;
  let a: TestServer;
  let alice: Person;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl, kwok and etcd', PEERS());
  const serverId = (s: TestServer) => readFileSync(join(s.dir, 'data', 'server', 'host_id'), 'utf8').trim();

  before(async (t) => {
    if (!have(t as never)) return;
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
    store = client.namespace(PREFIX);
    STORAGE = { type: 'etcd', peers: etcd.endpoints, prefix: PREFIX };
    // B: the fixture's server, the one the agent joins and tunnels to.
    f = await startFixture({ roles: ROLES, server: { storage: STORAGE } });
    a = await startServer({ storage: STORAGE, sealKeyFrom: f.server });
    alice = await invitedPerson(a, 'alice', ['prod-dev']);
    const wrote = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(wrote.exitCode, 0, String(wrote.stderr));
  });
  const others: TestServer[] = [];
  const secondAgents: KubeAgent[] = [];
  after(async () => {
    await Promise.all(secondAgents.map((agent) => agent.kill()));
    await Promise.all(others.map((server) => server.stop('SIGKILL')));
    await f?.stop();
    await a?.stop('SIGKILL');
    client?.close();
    await etcd?.stop();
  });

  test("the servers announce themselves and the agent's tunnel on their leases; A reaches the agent through B: get, watch, exec, exec -it in a pty, port-forward; the apiserver's audit names alice, and the store's audit has A's event", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    const records = await store.getAll().prefix('/servers/').strings();
    assert.deepEqual(Object.keys(records).sort(), [`/servers/${serverId(a)}`, `/servers/${serverId(f.server)}`].sort());
    const announced = JSON.parse(records[`/servers/${serverId(a)}`]!) as { peer_addr: string };
    assert.match(announced.peer_addr, /^127\.0\.0\.1:\d+$/, 'the listen host, any free port');
    assert.ok(a.log.includes(`proxy peering: other servers reach this one (${serverId(a)}) at ${announced.peer_addr}`), a.log);
    const tunnels = Object.keys(await store.getAll().prefix('/tunnels/').strings());
    assert.deepEqual(tunnels, [`/tunnels/${agent.hostId()}/${serverId(f.server)}`], 'one tunnel record, on B only');

    const k = personKubectl(alice.home);
    const pods = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.equal(pods.stdout, 'pod/web\n');

    await f.admin('create', 'configmap', 'before-watch', '-n', 'apps');
    const watch = k.spawn(['get', 'configmaps', '-n', 'apps', '--watch', '-o', 'name']);
    let watched = '';
    watch.stdout!.on('data', (c: Buffer) => (watched += c));
    try {
      await waitFor("the watch's first list", async () => watched.includes('configmap/before-watch'), { timeoutMs: 30_000 });
      await f.admin('create', 'configmap', 'through-peer', '-n', 'apps');
      await waitFor('the event through A and B', async () => watched.includes('configmap/through-peer'), { timeoutMs: 30_000 });
    } finally {
      watch.kill('SIGKILL');
      await watch;
    }

    const exec = await k.run(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo through-$((20+9))']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'through-29\n');
    // exec -it in a real pty: each line typed after the last answer comes back through A and B.
    await shellTwoLines(alice.home, 'peered');

    await forwardEcho(k.spawn, 128 * 1024);

    const mine = f.api.auditEvents().filter((e) => e.impersonatedUser?.username === 'alice');
    for (const verb of ['list', 'watch'])
      assert.ok(
        mine.some((e) => e.verb === verb),
        `an audited ${verb} as alice`,
      );
    for (const sub of ['/exec', '/portforward'])
      assert.ok(
        mine.some((e) => e.requestURI.includes(sub)),
        `an audited ${sub} as alice`,
      );
    for (const e of mine) assert.deepEqual(e.impersonatedUser!.extra?.['kport.dev/original-user'], ['alice'], JSON.stringify(e));

    // A decided and audited: its kube.request events name alice and the agent behind B.
    let events: Array<{ spec: Record<string, unknown> }> = [];
    await waitFor(
      "A's kube.request event for the exec",
      async () => {
        const all = (await auditEvents(a)) as Array<{ spec: Record<string, unknown> }>;
        events = all.filter((e) => e.spec.type === 'kube.request' && e.spec.user === 'alice');
        return events.some((e) => e.spec.resource === 'pods/exec' && e.spec.status === 101) || undefined;
      },
      { timeoutMs: 10_000 },
    ).catch(() => assert.fail(`no exec among: ${JSON.stringify(events.map((e) => e.spec))}`));
    const allowed = events.filter((e) => e.spec.outcome === 'allowed');
    assert.ok(
      allowed.length > 0 && allowed.every((e) => e.spec.host_id === agent.hostId() && e.spec.cluster === CLUSTER),
      JSON.stringify(events.map((e) => e.spec)),
    );
  });

  test("B's peer listener refuses an agent's host certificate, though the host CA issued it: no response, nothing reaches the agent", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    const record = JSON.parse((await store.get(`/servers/${serverId(f.server)}`).string())!) as { peer_addr: string };
    const { cert, key } = agent.credential();
    const path = `/api/v1/namespaces/probe-${randomBytes(6).toString('hex')}`;
    const outcome = await peerStream(record.peer_addr, cert, key, agent.hostId(), path);
    assert.equal(outcome.status, 0, 'no answer');
    assert.ok(outcome.refused, `refused (${outcome.detail})`);
    // A moment for a line the agent would write on the request's end: none names the probe.
    const working = await personKubectl(alice.home).run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(working.code, 0, working.stderr);
    assert.ok(!agent.audit().some((e) => e.path.startsWith(path)), 'nothing reached the agent');
  });

  test("a server whose record is deleted is refused by B's peer listener: A's person gets kport's 502, nothing reaches the agent; the record back, A reaches it again", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    const key = `/servers/${serverId(a)}`;
    const kept = (await store.get(key).string())!;
    const k = personKubectl(alice.home);
    await store.delete().key(key);
    try {
      // Each attempt names a config map of its own, so the agent's audit shows whether any reached it.
      const names: string[] = [];
      const refused = await waitFor(
        "B's refusal of A",
        async () => {
          const name = `refused-${randomBytes(4).toString('hex')}`;
          const res = await k.run(['get', 'configmap', name, '-n', 'apps'], { timeoutMs: 20_000 });
          if (/kport could not reach any agent/.test(res.stderr)) return (names.push(name), res);
          return undefined;
        },
        { timeoutMs: 10_000 },
      );
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /kport could not reach any agent serving this cluster/);
      const again = await k.run(['get', 'configmap', 'refused-again', '-n', 'apps'], { timeoutMs: 20_000 });
      assert.match(again.stderr, /kport could not reach any agent serving this cluster/, 'refused on every stream, not once');
      names.push('refused-again');
      assert.ok(!agent.audit().some((e) => names.some((n) => e.path.includes(n))), 'nothing reached the agent');
    } finally {
      await store.put(key).value(kept);
    }
    await waitFor('A reaches the agent again', async () => (await k.run(['get', 'pods', '-n', 'apps', '-o', 'name'])).code === 0 || undefined, {
      timeoutMs: 10_000,
    });
  });

  test("no agent and no person, an editor included, reads, lists, watches or writes the servers' and tunnels' records through /v1/backend or /v1/watch", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    const eve = await invitedPerson(a, 'eve', ['editor']);
    const profile = join(eve.home, '.kport', 'profiles', a.address.replace(':', '_'));
    const holders = {
      agent: agent.credential(),
      editor: { cert: readFileSync(join(profile, 'cert.pem'), 'utf8'), key: readFileSync(join(profile, 'key.pem'), 'utf8') },
    };
    const server = `/servers/${serverId(f.server)}`;
    const tunnel = `/tunnels/${agent.hostId()}/${serverId(f.server)}`;
    const held = async () => [await store.get(server).string(), await store.get(tunnel).string()];
    const kept = await held();
    const calls = [
      { op: 'get', key: server },
      { op: 'get', key: tunnel },
      { op: 'list', prefix: '/servers/' },
      { op: 'list', prefix: '/tunnels/' },
      { op: 'list', prefix: '/' },
      { op: 'put', key: server, value: JSON.stringify({ server_id: 'x', peer_addr: '127.0.0.1:1', started: 'now' }) },
      { op: 'create', key: `/servers/forged`, value: '{}' },
      { op: 'put', key: `/tunnels/${agent.hostId()}/forged`, value: '{}' },
      { op: 'delete', key: tunnel },
      { op: 'delete', key: server },
    ];
    for (const [who, credential] of Object.entries(holders)) {
      const session = await Session.open(a.port, credential);
      try {
        for (const call of calls) {
          const answer = await session.post('/v1/backend', call);
          assert.equal(answer.status, 403, `${who} ${JSON.stringify(call)}: ${JSON.stringify(answer.body)}`);
        }
        for (const prefix of ['/servers/', '/tunnels/', `/tunnels/${agent.hostId()}/`]) {
          const answer = await session.post('/v1/watch', { op: 'watch', prefix });
          assert.equal(answer.status, 403, `${who} watch ${prefix}: ${JSON.stringify(answer.body)}`);
        }
      } finally {
        session.close();
      }
    }
    assert.deepEqual(await held(), kept, 'the records are as they were');
    assert.equal(await store.get('/servers/forged').string(), null);
  });

  test("a join asking for the servers' proxy role is refused, with any token; no token grants it", async (t) => {
    if (!have(t)) return;
    const ca = await pinnedCa(a);
    for (const roles of [['proxy'], ['kube', 'proxy']]) {
      const token = await a.token('kube');
      await assert.rejects(
        joinByHand(a, ca, { roles, token }),
        (err: Error) => /join as discovery or kube, not proxy/.test(err.message),
        `a join asking for ${roles.join(',')}`,
      );
    }
    const added = await a.kport(['tokens', 'add', '--type=proxy']);
    assert.equal(added.exitCode, 2, String(added.stderr));
  });

  test("kill -9 of B while C holds another agent of the cluster: A's request loop never fails (a refused peer is a failed attempt, the next agent answers); then C killed too: A answers the clear 'no agent' message within the lease's TTL, never hanging", async (t) => {
    if (!have(t)) return;
    const k = personKubectl(alice.home);
    // C: a third server, and a second agent of the same join (one Kubernetes service) tunnelled to it only.
    const c = await startServer({ storage: STORAGE, sealKeyFrom: f.server });
    others.push(c);
    const second = await kubeAgent(c, {
      kubeconfig: kubeconfigYaml(f.api.server, f.api.caPem, f.api.proxy, CLUSTER),
      token: readFileSync(join(f.agents[0]!.dir, 'token'), 'utf8'),
      kubernetes: { labels: { env: 'prod' } },
    });
    second.start();
    secondAgents.push(second);
    await waitFor(
      "the second agent's tunnel record on C",
      async () => (await store.get(`/tunnels/${second.hostId()}/${serverId(c)}`).string()) !== null || undefined,
      { timeoutMs: 60_000 },
    );
    await waitFor(
      'a request through A served by the second agent',
      async () => {
        const name = `probe-${randomBytes(4).toString('hex')}`;
        await k.run(['get', 'configmap', name, '-n', 'apps']);
        return second.audit().some((e) => e.path.includes(name)) || undefined;
      },
      { timeoutMs: 30_000 },
    );

    const killed = performance.now();
    await f.server.stop('SIGKILL');
    const loop: Array<{ code: number; ms: number; stderr: string }> = [];
    // Past the lease's TTL: first while B's records still stand (its agent tried first half the time), then after.
    while (performance.now() - killed < PRESENCE.ttlMs + 3000) {
      const started = performance.now();
      const res = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name', '--request-timeout=5s'], { timeoutMs: 20_000 });
      loop.push({ code: res.code, ms: performance.now() - started, stderr: res.stderr });
    }
    assert.ok(loop.length >= 5, `${loop.length} requests`);
    assert.deepEqual(
      loop.filter((r) => r.code !== 0),
      [],
      'every request of the loop succeeded',
    );
    assert.deepEqual(
      Object.keys(await store.getAll().prefix('/tunnels/').strings()),
      [`/tunnels/${second.hostId()}/${serverId(c)}`],
      "B's tunnel records went with its lease",
    );

    const cKilled = performance.now();
    await c.stop('SIGKILL');
    const probes: number[] = [];
    const last = await waitFor(
      "A's 'no agent' answer",
      async () => {
        const started = performance.now();
        const res = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name', '--request-timeout=5s'], { timeoutMs: 20_000 });
        probes.push(performance.now() - started);
        return /no agent serves prod-kwok right now/.test(res.stderr) ? res : undefined;
      },
      { timeoutMs: 20_000 },
    );
    const elapsed = performance.now() - cKilled;
    assert.notEqual(last.code, 0);
    // The lease lives 6 s (peer-presence.ts PRESENCE), kept alive every 2 s; etcd's expiry check and the watch add well under 2 s.
    assert.ok(elapsed < PRESENCE.ttlMs + 2000, `A dropped C's agent ${Math.round(elapsed)} ms after the kill`);
    assert.ok(Math.max(...probes) < 6_000, `every request was answered promptly: ${probes.map(Math.round).join(', ')} ms`);
    assert.deepEqual(Object.keys(await store.getAll().prefix('/tunnels/').strings()), [], "C's tunnel records went with its lease");
  });
});

describe('proxy peering on a store one server owns', () => {
  test('peer_listen_addr on sqlite storage is refused at start with the sentence that says why, exit 2', async () => {
    await assert.rejects(startServer({ proxy: { peer_listen_addr: '127.0.0.1:0' } }), (err: Error) => {
      assert.match(err.message, /exited 2/);
      assert.match(
        err.message,
        /proxy_service\.peer_listen_addr is for several servers sharing one etcd store, and this server's storage is sqlite: remove it/,
      );
      return true;
    });
  });
});

/** One stream on a peer listener, made with `cert`: its status (0: none) and whether it was refused by a reset or a closed connection. */
async function peerStream(
  address: string,
  cert: string,
  key: string,
  hostId: string,
  path: string,
): Promise<{ status: number; refused: boolean; detail: string }> {
  const session = h2connect(`https://${address}`, { cert, key, rejectUnauthorized: false });
  session.on('error', () => {});
  try {
    return await new Promise((resolve) => {
      const req = session.request({ ':method': 'GET', ':path': path, 'kport-peer-host': hostId }, { endStream: true });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('error', () => {});
      req.resume();
      req.setTimeout(10_000, () => req.close());
      req.on('close', () =>
        resolve({
          status,
          refused: req.rstCode === constants.NGHTTP2_INADEQUATE_SECURITY || session.destroyed || session.closed,
          detail: `rst ${req.rstCode}, session ${session.destroyed ? 'destroyed' : 'open'}`,
        }),
      );
    });
  } finally {
    session.destroy();
  }
}
