// kubectl through the server when processes die (issue 21 "Tests"): two Kubernetes agents (the built
// CLI, each on its own data dir) serve one cluster; one is killed with SIGKILL while 20 watches and a
// request loop run through the server; then the server itself is killed and restarted on its port
// and data dir. Properties, not one run's timings: requests go on after at most a few failures,
// every watch either goes on or ends (never hangs) and re-lists, the agents come back within 10 s.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { invitedPerson } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture, type KubeAgent } from '../helpers/kube-server-fixture.ts';
import { havePeer, waitFor } from '../peers/process.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;
const WATCHES = 20;

/** One HTTP/2 connection to the server with a person's login certificate (what kubectl holds). */
function personSession(person: Person, address: string): ClientHttp2Session {
  const profile = join(person.home, '.kport', 'profiles', address.replace(':', '_'));
  const file = (name: string) => readFileSync(join(profile, name), 'utf8');
  const session = connect(`https://${address}`, { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem') });
  session.on('error', () => {});
  return session;
}

/** A GET's status (0: the stream failed), bounded by 30 s. */
function get(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
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
}

interface Watch {
  stream: ClientHttp2Stream;
  events: string[];
  ended?: { at: number; rst: number; status: number };
}

function watch(session: ClientHttp2Session, resourceVersion: string): Watch {
  const stream = session.request({
    ':path': `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps?watch=1&resourceVersion=${resourceVersion}&allowWatchBookmarks=false`,
  });
  const w: Watch = { stream, events: [] };
  let status = 0;
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('response', (h) => (status = Number(h[':status'])));
  stream.on('data', (c: string) => {
    buffered += c;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) w.events.push(JSON.parse(line).object?.metadata?.name ?? line);
    }
  });
  stream.on('error', () => {});
  stream.on('close', () => (w.ended = { at: Date.now(), rst: stream.rstCode ?? 0, status }));
  return w;
}

describe('two agents for one cluster, one killed; the server killed and restarted', { concurrency: false, timeout: 900_000 }, () => {
  let f: Fixture;
  let alice: Person;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl and kwok', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: ROLES, agents: 2 });
    alice = await invitedPerson(f.server, 'alice', ['prod-dev']);
    const wrote = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(wrote.exitCode, 0, String(wrote.stderr));
  });
  after(async () => f?.stop());

  test('kill -9 of one agent under 20 watches and a request loop: requests go on after at most a few failures; each watch goes on or ends and re-lists, none hangs', async (t) => {
    if (!have(t)) return;
    const session = personSession(alice, f.server.address);
    t.after(() => session.destroy());
    const list = await get(session, `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps`);
    assert.equal(list.status, 200, list.body);
    const watches = Array.from({ length: WATCHES }, () => watch(session, JSON.parse(list.body).metadata.resourceVersion));
    // Every watch is open at the agents (one of the two, chosen at random each time).
    await f.admin('create', 'configmap', 'before-kill', '-n', 'apps');
    await waitFor('every watch to see the first event', async () => watches.every((w) => w.events.includes('before-kill')), { timeoutMs: 60_000 });

    // The request loop: one GET after another, and a kill -9 of agent 0 in the middle of it.
    const results: Array<{ status: number; afterKill: boolean }> = [];
    let killedAt = 0;
    const loop = (async () => {
      while (!killedAt || results.filter((r) => r.afterKill).length < 30) {
        const { status } = await get(session, `/k/${CLUSTER}/api/v1/namespaces/apps/pods/web`);
        results.push({ status, afterKill: killedAt > 0 });
      }
    })();
    await waitFor('requests before the kill', async () => results.length >= 10, { timeoutMs: 60_000 });
    const victim = f.agents[0]!;
    await victim.kill();
    killedAt = Date.now();
    await loop;
    const after = results.filter((r) => r.afterKill).map((r) => r.status);
    let run = 0;
    let worst = 0;
    for (const s of after) worst = Math.max(worst, (run = s === 200 ? 0 : run + 1));
    assert.ok(worst <= 3, `at most 3 failures in a row after the kill: ${after.join(',')}`);
    assert.deepEqual(after.slice(-10), Array(10).fill(200), `the loop goes on: ${after.join(',')}`);

    // Each watch either is still open and sees a new event, or has ended: none hangs silently.
    await f.admin('create', 'configmap', 'after-kill', '-n', 'apps');
    await waitFor('each watch to see the event or to have ended', async () => watches.every((w) => w.ended || w.events.includes('after-kill')), {
      timeoutMs: 60_000,
    });
    const ended = watches.filter((w) => w.ended);
    const open = watches.filter((w) => !w.ended);
    // 20 watches on two agents at random: all on the survivor is a 1 in 2^20 chance.
    assert.ok(ended.length > 0 && open.length > 0, `ended ${ended.length}, open ${open.length}`);
    t.diagnostic(
      `after the kill: ${after.length - after.filter((s) => s === 200).length} of ${after.length} requests failed (longest run ${worst}); ${ended.length} of ${WATCHES} watches ended, the last ${Math.max(...ended.map((w) => w.ended!.at - killedAt))} ms after the kill`,
    );
    for (const w of ended) assert.ok(w.ended!.status === 200 && !w.events.includes('after-kill'), JSON.stringify(w.ended));
    // What an informer does next: a fresh list and a watch from it; the survivor serves both.
    const relist = await get(session, `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps`);
    assert.equal(relist.status, 200, relist.body);
    assert.ok(relist.body.includes('"after-kill"'));
    const again = Array.from({ length: ended.length }, () => watch(session, JSON.parse(relist.body).metadata.resourceVersion));
    await f.admin('create', 'configmap', 'after-relist', '-n', 'apps');
    await waitFor('the new watches to see a new event', async () => again.every((w) => w.events.includes('after-relist')), { timeoutMs: 60_000 });
    for (const w of [...open, ...again]) w.stream.close();

    // kubectl's own watch through the server goes on with the one agent left.
    const k = personKubectl(alice.home);
    const kw = k.spawn(['get', 'configmaps', '-n', 'apps', '--watch', '-o', 'name']);
    let out = '';
    kw.stdout!.on('data', (c: Buffer) => (out += c));
    try {
      await waitFor("kubectl's watch to list", async () => out.includes('configmap/after-relist'), { timeoutMs: 30_000 });
      await f.admin('create', 'configmap', 'seen-by-kubectl', '-n', 'apps');
      await waitFor("kubectl's watch to see it", async () => out.includes('configmap/seen-by-kubectl'), { timeoutMs: 30_000 });
    } finally {
      kw.kill('SIGKILL');
      await kw;
    }
  });

  test("server kill -9 and restart on its port and data dir: the agents' tunnels are back within 10 s; alice's kubectl works again without a new login", async (t) => {
    if (!have(t)) return;
    const victim = f.agents[0]!;
    victim.start();
    const live: KubeAgent[] = f.agents;
    await f.waitServed(live);
    const before = await allowedTunnels(f, live);
    await f.server.stop('SIGKILL');
    await sleep(2000);
    await f.server.start();
    const ready = Date.now();
    const back = await waitFor(
      'both tunnels after the restart',
      async () => {
        const now = await allowedTunnels(f, live);
        return live.every((a) => (now.get(a.hostId())?.length ?? 0) > (before.get(a.hostId())?.length ?? 0)) ? now : undefined;
      },
      { timeoutMs: 60_000 },
    );
    for (const a of live) {
      const took = Date.parse(back.get(a.hostId())!.at(-1)!) - ready;
      assert.ok(took <= 10_000, `agent ${a.hostId()} back ${took} ms after the server was ready`);
    }
    // The same kubeconfig, the same login: no new login, it works.
    const k = personKubectl(alice.home);
    const pods = await waitFor(
      'kubectl through the restarted server',
      async () => {
        const r = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
        return r.code === 0 ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(pods.stdout, 'pod/web\n');
  });
});

/** The times of each agent's accepted tunnels, by host id. */
async function allowedTunnels(f: Fixture, agents: KubeAgent[]): Promise<Map<string, string[]>> {
  const res = await f.server.kport(['get', 'audit', '--format=json']);
  assert.equal(res.exitCode, 0, String(res.stderr));
  const events = (JSON.parse(String(res.stdout)) as Array<{ spec: { type: string; outcome: string; host_id?: string; time: string } }>).map((e) => e.spec);
  return new Map(
    agents.map((a) => [
      a.hostId(),
      events
        .filter((e) => e.type === 'agent.tunnel' && e.outcome === 'allowed' && e.host_id === a.hostId())
        .map((e) => e.time)
        .sort(),
    ]),
  );
}
