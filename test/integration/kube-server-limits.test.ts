// Floods and role edits through the server (issue 21, attack 4), with real processes: a real
// `kport server start`, a real Kubernetes agent (`kport discover run`), kube-apiserver with kwok pods.
// 1. One person opening watch after watch over many connections gets 429 past their bound, while
//    another person's GET and exec are served; people together filling an agent's tunnel get
//    "busy" answers, never a queued stream; when the flooders vanish the tunnel stays up.
// 2. A role edited so it no longer allows the cluster ends the open exec and watch of people who
//    hold it, within seconds, and leaves everyone else's open streams alone.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { CLUSTER, PEERS, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { auditEvents } from '../helpers/network.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const role = (name: string, env: string) => ({
  kind: 'role',
  version: 'v7',
  metadata: { name },
  spec: { allow: { kubernetes_labels: { env }, kubernetes_groups: ['developers'] } },
});
const WATCH = `/k/${CLUSTER}/api/v1/namespaces/apps/pods?watch=1&timeoutSeconds=600`;

describe('kubectl through the server: floods and role edits', { concurrency: false, timeout: 900_000 }, () => {
  let f: Fixture;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver and kwok', PEERS());

  const connectAs = (who: Person): ClientHttp2Session => {
    const dir = join(who.home, '.kport', 'profiles', f.server.address.replace(':', '_'));
    const session = http2Connect(`https://${f.server.address}`, {
      cert: readFileSync(join(dir, 'cert.pem')),
      key: readFileSync(join(dir, 'key.pem')),
      ca: readFileSync(join(dir, 'ca.pem')),
      servername: 'localhost',
      peerMaxConcurrentStreams: 1000,
    });
    session.on('error', () => {});
    return session;
  };
  /** `n` watches on one connection of `who`; counts answers by status and the Status messages of refusals. */
  const flood = (who: Person, n: number) => {
    const session = connectAs(who);
    const seen = { statuses: new Map<number, number>(), messages: new Set<string>(), answered: 0 };
    for (let i = 0; i < n; i++) {
      const req = session.request({ ':path': `${WATCH}&n=${i}` });
      let body = '';
      req.on('response', (h) => {
        const status = Number(h[':status']);
        seen.statuses.set(status, (seen.statuses.get(status) ?? 0) + 1);
        seen.answered++;
        if (status !== 200) req.on('data', (c: Buffer) => (body += c)).on('end', () => seen.messages.add(body.slice(0, 300)));
        else req.resume();
      });
      req.on('error', () => {});
    }
    return { session, seen };
  };
  const get = (who: Person) =>
    new Promise<number>((resolve) => {
      const session = connectAs(who);
      const req = session.request({ ':path': `/k/${CLUSTER}/api/v1/namespaces/apps/pods` });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.resume();
      req.on('close', () => (session.close(), resolve(status)));
    });
  const kubectl = (who: Person, args: string[]) =>
    execa(BINARIES.kubectl(), args, {
      env: { HOME: who.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 120_000,
    });
  /** A watch of `who` that the server would keep open for 600 s. */
  const watch = (who: Person) => {
    const session = connectAs(who);
    const state = { status: 0, ended: false, session };
    const req = session.request({ ':path': WATCH });
    req.on('response', (h) => (state.status = Number(h[':status'])));
    req.resume();
    req.on('error', () => {});
    req.on('close', () => (state.ended = true));
    return state;
  };
  /** `kubectl exec` of `who` running until the server ends it (sleep 300). */
  const longExec = (who: Person) => {
    const exec = kubectl(who, ['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo ready; exec sleep 300']);
    const state = { out: '', ended: false, exec };
    exec.stdout!.on('data', (c: Buffer) => (state.out += c));
    void exec.finally(() => (state.ended = true));
    return state;
  };

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: [role('prod-dev', 'prod'), role('carol-prod', 'prod')] });
  });
  after(async () => f?.stop());

  test('one person\'s flood of watches over many connections: 429 past 256 open, another person\'s GET and exec are served, the tunnel stays up when the flood vanishes; people filling a tunnel get "busy", never a queued stream', async (t) => {
    if (!have(t)) return;
    const alice = await invitedPerson(f.server, 'alice', ['prod-dev']);
    const dave = await invitedPerson(f.server, 'dave', ['prod-dev']);
    assert.equal((await dave.kport(['kube', 'config', CLUSTER])).exitCode, 0);

    const floods = [flood(alice, 256), flood(alice, 256)];
    await waitFor('every watch of alice answered', async () => floods.every((x) => x.seen.answered === 256), { timeoutMs: 120_000 });
    const count = (status: number) => floods.reduce((n, x) => n + (x.seen.statuses.get(status) ?? 0), 0);
    assert.equal(count(200), 256, `alice holds at most 256 open: ${JSON.stringify(floods.map((x) => [...x.seen.statuses]))}`);
    assert.equal(count(429), 256);
    assert.ok(
      floods.some((x) => [...x.seen.messages].some((m) => /alice already has 256 Kubernetes requests open/.test(m))),
      [...floods[1]!.seen.messages].join('\n'),
    );
    assert.equal(await get(dave), 200, "dave is served during alice's flood");
    const exec = await kubectl(dave, ['exec', '-n', 'apps', 'web', '--', 'echo', 'served']);
    assert.equal(exec.stdout.trim(), 'served', exec.stderr);
    await waitFor(
      'the 429s audited',
      async () =>
        (await auditEvents(f.server)).some((e) => {
          const s = e.spec as Record<string, unknown>;
          return s.type === 'kube.request' && s.status === 429 && s.user === 'alice';
        }) || undefined,
      { timeoutMs: 30_000 },
    );

    // Three more people fill the agent's tunnel (1,000 streams) past what it allows.
    const others = await Promise.all(['erin', 'frank', 'gina'].map((name) => invitedPerson(f.server, name, ['prod-dev'])));
    const more = others.map((p) => flood(p, 256));
    await waitFor('every watch of the others answered', async () => more.every((x) => x.seen.answered === 256), { timeoutMs: 120_000 });
    const all = [...floods, ...more];
    const open = all.reduce((n, x) => n + (x.seen.statuses.get(200) ?? 0), 0);
    const busy = more.reduce((n, x) => n + (x.seen.statuses.get(502) ?? 0), 0);
    assert.ok(open <= 900, `${open} watches open on a tunnel of 1,000 streams`);
    assert.equal(open + busy, 256 * 4, JSON.stringify(more.map((x) => [...x.seen.statuses])));
    assert.ok(
      more.some((x) => [...x.seen.messages].some((m) => /busy/.test(m))),
      more.map((x) => [...x.seen.messages].join('\n')).join('\n'),
    );

    // Every flooder vanishes at once: their streams are reset on the tunnel, which must stay up.
    for (const x of all) x.session.destroy();
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(await get(dave), 200, 'dave is served after the flood');
    const again = await kubectl(dave, ['exec', '-n', 'apps', 'web', '--', 'echo', 'still']);
    assert.equal(again.stdout.trim(), 'still', again.stderr);
    assert.doesNotMatch(f.agents[0]!.log, /tunnel .* lost/, "the agent's tunnel was never lost");
  });

  test("a role edited so it no longer allows the cluster ends the open exec and watch of people holding it within seconds; others' streams are left alone; session.end says why", async (t) => {
    if (!have(t)) return;
    const carol = await invitedPerson(f.server, 'carol', ['carol-prod']);
    const hank = await invitedPerson(f.server, 'hank', ['prod-dev']);
    assert.equal((await carol.kport(['kube', 'config', CLUSTER])).exitCode, 0);
    const exec = longExec(carol);
    const carolWatch = watch(carol);
    const hankWatch = watch(hank);
    t.after(() => (exec.exec.kill('SIGKILL'), carolWatch.session.destroy(), hankWatch.session.destroy()));
    await waitFor(
      'the exec and the watches to open',
      async () => (exec.out.includes('ready') && carolWatch.status === 200 && hankWatch.status === 200) || undefined,
      { timeoutMs: 60_000 },
    );

    const edited = join(f.dir, 'carol-none.yaml');
    writeFileSync(edited, stringify(role('carol-prod', 'none')));
    const res = await f.server.kport(['create', '-f', edited, '--force']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    // The command sleeps 300 s and the watch asks for 600: ending at all is the server's doing.
    await waitFor("carol's exec and watch to end", async () => (exec.ended && carolWatch.ended) || undefined, { timeoutMs: 30_000 }).catch(() => {
      assert.fail(`still open after the role edit: exec ${exec.ended ? 'ended' : 'running'}, watch ${carolWatch.ended ? 'ended' : 'open'}`);
    });
    assert.equal(hankWatch.ended, false, "hank's watch, on a cluster his roles still allow, is left open");
    await waitFor(
      'session.end naming the role change',
      async () => (await auditEvents(f.server)).find((e) => e.spec.type === 'session.end' && (e.spec as Record<string, unknown>).user === 'carol') || undefined,
      { timeoutMs: 30_000 },
    ).then((e) => {
      assert.match(JSON.stringify(e.spec), /no longer allow kube_cluster/);
    });
  });

  test("users update that takes away the role allowing the cluster ends that person's open exec and watch within seconds (through the server, then on the host); the next request is refused; roles given back serve again", async (t) => {
    if (!have(t)) return;
    const ivan = await invitedPerson(f.server, 'ivan', ['prod-dev']);
    const erin = await invitedPerson(f.server, 'erin2', ['editor']);
    assert.equal((await ivan.kport(['kube', 'config', CLUSTER])).exitCode, 0);
    for (const [who, args] of [
      [erin, ['users', 'update', 'ivan', '--set-roles', 'auditor']],
      [f.server, ['users', 'update', 'ivan', '--remove-roles', 'prod-dev']],
    ] as const) {
      const exec = longExec(ivan);
      const open = watch(ivan);
      t.after(() => (exec.exec.kill('SIGKILL'), open.session.destroy()));
      await waitFor('the exec and the watch to open', async () => (exec.out.includes('ready') && open.status === 200) || undefined, { timeoutMs: 60_000 });
      const res = await who.kport([...args]);
      assert.equal(res.exitCode, 0, String(res.stderr));
      // The command sleeps 300 s and the watch asks for 600: ending at all is the server's doing.
      await waitFor("ivan's exec and watch to end", async () => (exec.ended && open.ended) || undefined, { timeoutMs: 30_000 }).catch(() => {
        assert.fail(`still open after ${args.join(' ')}: exec ${exec.ended ? 'ended' : 'running'}, watch ${open.ended ? 'ended' : 'open'}`);
      });
      assert.equal(await get(ivan), 403, 'a cluster the roles no longer allow answers as a missing one (403, which kubectl prints)');
      const back = await f.server.kport(['users', 'update', 'ivan', '--add-roles', 'prod-dev']);
      assert.equal(back.exitCode, 0, String(back.stderr));
      assert.equal(await get(ivan), 200, 'given back, served at the next request');
    }
  });
});
