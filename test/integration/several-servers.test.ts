// Several servers on one etcd behind a real load balancer (issue 29), with real processes only: 3
// `kport server start` (the built CLI, each its own data dir, one seal.key) on an etcd of 3 members,
// HAProxy in front (mode tcp: TLS passes through), a real kube-apiserver served by Kubernetes agents,
// a person who logs in with password + TOTP and runs kubectl, everything through the LB's address.
//
// One agent joined through the LB holds its tunnel on one server; the others reach it by proxy
// peering, so any server a person's connection lands on serves the cluster. What a server's death
// does to open sessions is in several-servers-failover.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { after, before, describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { fetchPinnedCA } from '../../src/client/server-client.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { CLUSTER, personKubectl, ROLES, type Ran } from '../helpers/kube-server-fixture.ts';
import { invitedPerson } from '../helpers/login.ts';
import { auditEvents, kubeAgent, type KubeAgent } from '../helpers/network.ts';
import { SEVERAL_SERVERS_PEERS, startSeveralServers, type SeveralServers } from '../helpers/several-servers.ts';
import { kubeconfigYaml, startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const run = promisify(execFile);
type Person = Awaited<ReturnType<typeof invitedPerson>>;
const PEERS = () => [...SEVERAL_SERVERS_PEERS(), BINARIES.kubeApiserver(), BINARIES.kubectl()];
const CONFIGMAPS = `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps`;

/** A kube-apiserver with namespace apps whose configmaps the developers group may read; its kubeconfig for agents (the proxy identity). */
async function startCluster(): Promise<{ api: KubeApiserver; kubeconfig: string; admin(...args: string[]): Promise<unknown> }> {
  const api = await startKubeApiserver();
  // The agents' identity (kport-proxy), bootstrapped by kport itself.
  await kubeHome(api, tempDir('several-kube'), { roles: [], users: [] });
  const admin = (...args: string[]) => run(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
  await admin('create', 'namespace', 'apps');
  await admin('create', 'clusterrole', 'developer', '--verb=get,list,watch', '--resource=configmaps');
  await admin('create', 'rolebinding', 'developers', '--clusterrole=developer', '--group=developers', '-n', 'apps');
  await admin('create', 'configmap', 'settings', '-n', 'apps');
  return { api, admin, kubeconfig: kubeconfigYaml(api.server, api.caPem, api.proxy, CLUSTER) };
}

/** A GET with the person's login certificate straight at one address (a server's own, or the LB's): its status and body. */
async function personGet(person: Person, profileAddress: string, address: string, path: string): Promise<{ status: number; body: string }> {
  const profile = join(person.home, '.kport', 'profiles', profileAddress.replace(':', '_'));
  const file = (name: string) => readFileSync(join(profile, name), 'utf8');
  const session = h2connect(`https://${address}`, { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem') });
  session.on('error', () => {});
  try {
    return await new Promise((resolve) => {
      const req = session.request({ ':path': path });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: string) => (body += c));
      req.setTimeout(30_000, () => req.close());
      req.on('error', () => {});
      req.on('close', () => resolve({ status: req.rstCode ? 0 : status, body }));
      req.end();
    });
  } finally {
    session.destroy();
  }
}

/**
 * The server that holds `agent`'s latest tunnel (other than `not`): the one that recorded its
 * accepted agent.tunnel event, told by HAProxy's source address. Waits until there is one.
 */
async function tunnelHolder(f: SeveralServers, agent: KubeAgent, opts: { not?: number; timeoutMs?: number } = {}): Promise<number> {
  const found = await waitFor(
    `the tunnel of agent ${agent.dir} on a server${opts.not === undefined ? '' : ` other than s${opts.not}`}`,
    async () => {
      const id = agent.hostId();
      const events = (await auditEvents(f.front)).map((e) => e.spec as typeof e.spec & { remote_addr?: string });
      const latest = events.filter((e) => e.type === 'agent.tunnel' && e.outcome === 'allowed' && e.host_id === id).at(-1);
      const i = latest?.remote_addr === undefined ? undefined : f.serverOf(latest.remote_addr);
      // An object: server 0 is a holder too.
      return i !== undefined && i !== opts.not ? { i } : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000 },
  );
  return found.i;
}

/** Whether a server answers a person's request for CLUSTER (through its own tunnel to the agent, or the holder's). */
async function routes(f: SeveralServers, person: Person, i: number): Promise<boolean> {
  const res = await personGet(person, f.front.address, f.servers[i]!.address, CONFIGMAPS);
  if (res.status === 200) return true;
  assert.equal(res.status, 502, res.body);
  assert.match(res.body, /no agent serves/);
  return false;
}

describe('3 servers on a 3-member etcd behind HAProxy', { concurrency: false, timeout: 900_000 }, () => {
  let f: SeveralServers | undefined;
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  let alice: Person;
  let viaLb: KubeAgent;
  let holder: number;
  /** One kube join token for every agent: agents of one token serve the same kubeconfig_file cluster (mayServe). */
  let token: string;
  const agents: KubeAgent[] = [];
  const have = (t: TestContext) => havePeer(t, 'etcd, HAProxy, kube-apiserver and kubectl', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    const [servers, kube] = await Promise.allSettled([startSeveralServers(), startCluster()]);
    // A setup that failed leaves no process behind.
    if (servers.status === 'fulfilled') f = servers.value;
    if (kube.status === 'fulfilled') cluster = kube.value;
    if (servers.status === 'rejected' || kube.status === 'rejected')
      throw servers.status === 'rejected' ? servers.reason : (kube as PromiseRejectedResult).reason;
    const rolesFile = join(f.servers[0]!.dir, 'roles.yaml');
    writeFileSync(rolesFile, ROLES.map((r) => stringify(r)).join('---\n'));
    const created = await f.front.kport(['create', '-f', rolesFile]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    token = await f.front.token('kube');
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const s of f?.servers ?? []) process.stderr.write(`--- server ${s.address}\n${s.log.slice(-5000)}\n`);
    await Promise.all(agents.map((a) => a.kill()));
    await f?.stop();
    await cluster?.api.stop();
  });

  test("one CA pin for the LB's address, and each server's certificate valid for it: connections reach every server", async (t) => {
    if (!have(t)) return;
    const lb = f!.lb;
    const ca = await fetchPinnedCA({ host: '127.0.0.1', port: lb.port }, [f!.front.pin], () => {});
    const before = await lb.stats();
    const seen = new Map<string, PeerCertificate>();
    for (let n = 0; n < 2 * f!.servers.length; n++) {
      // Verified as a client verifies: the pinned CA, and the name it dialled (the LB's 127.0.0.1).
      const cert = await new Promise<PeerCertificate>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: lb.port, ca, ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getPeerCertificate());
          socket.destroy();
        });
        socket.on('error', reject);
      });
      seen.set(cert.fingerprint256, cert);
    }
    const after = await lb.stats();
    // Round-robin: each server got connections, and each presented a certificate of its own.
    for (const s of after) assert.ok(s.total > before.find((b) => b.name === s.name)!.total, `${s.name} got no connection: ${JSON.stringify(after)}`);
    assert.equal(seen.size, f!.servers.length, 'one certificate per server');
    for (const cert of seen.values()) assert.match(cert.subjectaltname ?? '', /IP Address:127\.0\.0\.1\b/);
  });

  test('an agent joins through the LB; its tunnel ends on one server', async (t) => {
    if (!have(t)) return;
    viaLb = await kubeAgent(f!.front, { token, kubeconfig: cluster!.kubeconfig, kubernetes: { labels: { env: 'prod' } }, name: 'agent-lb' });
    viaLb.start();
    agents.push(viaLb);
    holder = await tunnelHolder(f!, viaLb);
    t.diagnostic(`the agent's tunnel ends on s${holder}`);
  });

  test('a person logs in through the LB with password and TOTP, and is let in by every server', async (t) => {
    if (!have(t)) return;
    alice = await invitedPerson(f!.front, 'alice', ['prod-dev']);
    await waitFor('the cluster to be listed', async () => (await alice.kport(['kube', 'ls'])).stdout?.toString().includes(CLUSTER), { timeoutMs: 60_000 });
    const wrote = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(wrote.exitCode, 0, String(wrote.stderr));
    // The certificate the login gave through the LB is one every server accepts, and each serves the
    // cluster: the holder through the agent's tunnel, the others through the holder.
    await waitFor('every server to route to the agent', async () => (await Promise.all(f!.servers.map((_, i) => routes(f!, alice, i)))).every(Boolean), {
      timeoutMs: 60_000,
    });
  });

  test('kubectl through the LB, again and again: every server serves some of the connections, every run succeeds', async (t) => {
    if (!have(t)) return;
    const before = await f!.lb.stats();
    const k = personKubectl(alice.home);
    for (let n = 0; n < 9; n++) {
      const r = await k.run(['get', 'configmaps', '-n', 'apps', '-o', 'name']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /configmap\/settings/);
    }
    const after = await f!.lb.stats();
    const served = after.map((s) => `${s.name}: ${s.total - before.find((b) => b.name === s.name)!.total}`);
    t.diagnostic(`connections per server during 9 kubectl runs: ${served.join(', ')}`);
    for (const s of after) assert.ok(s.total > before.find((b) => b.name === s.name)!.total, served.join(', '));
  });

  test('kill -9 of the etcd leader: kubectl through the LB goes on', async (t) => {
    if (!have(t)) return;
    const leader = await etcdLeader(f!);
    const k = personKubectl(alice.home);
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    const runs: Array<Ran & { at: number }> = [];
    for (let n = 0; n < 10; n++) runs.push({ ...(await k.run(['get', 'configmaps', '-n', 'apps', '-o', 'name'])), at: Date.now() - killedAt });
    t.diagnostic(`after the kill: ${runs.map((r) => `${r.code === 0 ? 'ok' : 'failed'} at ${r.at} ms`).join(', ')}`);
    // Two members still make a quorum: a new leader within the election timeout (500 ms), and every
    // request answered, the store's reads and the audit's writes included.
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    await leader.start();
    await waitFor('the member to be healthy again', async () => (await fetch(`${leader.clientUrl}/health`)).ok, { timeoutMs: 30_000 });
  });

  test("kill -9 of a server that does not hold the LB agent's tunnel: the kubectl loop goes on, new connections land on live servers; restarted, it is back in rotation", async (t) => {
    if (!have(t)) return;
    const victim = (holder + 1) % f!.servers.length;
    const k = personKubectl(alice.home);
    const runs: Array<Ran & { started: number }> = [];
    let killedAt = 0;
    const loop = (async () => {
      while (!killedAt || runs.filter((r) => r.started >= killedAt).length < 12) {
        const started = Date.now();
        runs.push({ ...(await k.run(['get', 'configmaps', '-n', 'apps', '-o', 'name'])), started });
      }
    })();
    await waitFor('runs before the kill', async () => runs.length >= 3, { timeoutMs: 60_000 });
    killedAt = Date.now();
    await f!.kill(victim);
    const outOfRotation = Date.now() - killedAt;
    await loop;
    const afterKill = runs.filter((r) => r.started >= killedAt);
    const inFlight = runs.filter((r) => r.started < killedAt && r.code !== 0);
    t.diagnostic(`s${victim} out of HAProxy's rotation ${outOfRotation} ms after kill -9; ${inFlight.length} run in flight failed`);
    // A run started after the kill never fails: HAProxy redispatches a connection the dead server
    // refuses before its checks take it out (inter 500 ms, fall 2). One in flight at the kill may.
    for (const r of afterKill) assert.equal(r.code, 0, r.stderr);
    assert.ok(inFlight.length <= 1, inFlight.map((r) => r.stderr).join('\n'));
    assert.ok(runs.every((r) => r.code === 0 || r.started < killedAt));

    // Restarted on its port and data dir: the same host id, back in rotation, and serving again
    // (through the holder) once its caches are loaded.
    const id = f!.hostId(victim);
    await f!.restart(victim);
    assert.equal(f!.hostId(victim), id);
    await waitFor(`s${victim} to route again`, () => routes(f!, alice, victim), { timeoutMs: 60_000 });
    const r = await k.run(['get', 'configmaps', '-n', 'apps', '-o', 'name']);
    assert.equal(r.code, 0, r.stderr);
  });

  test("kill -9 of the server holding the LB agent's tunnel: the agent redials through the LB onto a live server within 10 s", async (t) => {
    if (!have(t)) return;
    const killedAt = Date.now();
    await f!.kill(holder);
    const next = await tunnelHolder(f!, viaLb, { not: holder, timeoutMs: 10_000 });
    const events = (await auditEvents(f!.front)).map((e) => e.spec as typeof e.spec & { time: string });
    const back = events.filter((e) => e.type === 'agent.tunnel' && e.outcome === 'allowed' && e.host_id === viaLb.hostId()).at(-1)!;
    const took = Date.parse(back.time) - killedAt;
    t.diagnostic(`the agent's tunnel moved from s${holder} to s${next} ${took} ms after kill -9`);
    assert.ok(took < 10_000, `${took} ms`);
    // Through the new holder the person reaches the cluster again; the killed server restarts.
    assert.equal(await routes(f!, alice, next), true);
    await f!.restart(holder);
  });
});

/** The member the others follow, from etcd's own status (its gRPC gateway). */
async function etcdLeader(f: SeveralServers) {
  const statuses = await Promise.all(
    f.etcd.members.map(async (m) => {
      const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' });
      const status = (await res.json()) as { header: { member_id: string }; leader: string };
      return { m, self: status.header.member_id, leader: status.leader };
    }),
  );
  const leader = statuses.find((s) => s.self === s.leader);
  assert.ok(leader, JSON.stringify(statuses.map(({ self, leader }) => ({ self, leader }))));
  return leader.m;
}
