// Several servers (issue 29), what a server's death and a lock do to people's open sessions, with
// real processes only: 3 `kport server start` on a 3-member etcd behind HAProxy, a kube-apiserver
// with kwok pods served by one agent that joined through the load balancer, people whose kubectl
// goes through the load balancer (any server; proxy peering reaches the agent's tunnel wherever it ends).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { Etcd3, type Namespace } from 'etcd3';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture, type Ran } from '../helpers/kube-server-fixture.ts';
import { invitedPerson } from '../helpers/login.ts';
import { auditEvents } from '../helpers/network.ts';
import { SEVERAL_SERVERS_PEERS, startSeveralServers, type SeveralServers } from '../helpers/several-servers.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;
/** The agents' redial (agent-dial.ts: the first within 1 s) plus HAProxy's checks and the other servers' watch, with room for a loaded machine. */
const RESUME_MS = 5_000;

function spawn(who: Person, args: string[]) {
  const proc = personKubectl(who.home).spawn(args);
  const run = { out: '', err: '', code: undefined as number | undefined, proc, endedAt: 0 };
  proc.stdout!.on('data', (c: Buffer) => (run.out += c));
  proc.stderr!.on('data', (c: Buffer) => (run.err += c));
  void proc.then((r) => {
    run.code = r.exitCode ?? -1;
    run.endedAt = Date.now();
  });
  return run;
}

/** `kubectl exec -it` in a real pseudo-terminal (script -e: its exit code is kubectl's); `out` has both streams, as a terminal shows them. */
function terminalExec(who: Person) {
  const command = `${BINARIES.kubectl()} exec -it -n apps web -- sh`;
  const proc = execa('script', ['-qefc', command, '/dev/null'], {
    env: { ...personKubectl(who.home).env, TERM: 'xterm' },
    extendEnv: false,
    reject: false,
    stdin: 'pipe',
  });
  const run = { out: '', code: undefined as number | undefined, proc, endedAt: 0 };
  proc.stdout!.on('data', (c: Buffer) => (run.out += c));
  proc.stderr!.on('data', (c: Buffer) => (run.out += c));
  void proc.then((r) => {
    run.code = r.exitCode ?? -1;
    run.endedAt = Date.now();
  });
  return { ...run, get: () => run, type: (text: string) => proc.stdin!.write(text) };
}

/** A watch of the person's, straight at one server's address (not through the LB): resolves with when it ended. */
function watchAt(person: Person, front: string, address: string): { ended: Promise<number>; listed: Promise<void>; close(): void } {
  const profile = join(person.home, '.kport', 'profiles', front.replace(':', '_'));
  const file = (name: string) => readFileSync(join(profile, name), 'utf8');
  const session = h2connect(`https://${address}`, { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem') });
  session.on('error', () => {});
  const req = session.request({ ':path': `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps?watch=1` });
  req.on('error', () => {});
  let out = '';
  req.setEncoding('utf8');
  const listed = new Promise<void>((resolve) => req.on('data', (c: string) => ((out += c), out.includes('ADDED') && resolve())));
  const ended = new Promise<number>((resolve) => req.on('close', () => resolve(Date.now())));
  return { ended, listed, close: () => session.destroy() };
}

describe('3 servers behind HAProxy, one agent: kill -9 of a server, and a lock, under open sessions', { concurrency: false, timeout: 900_000 }, () => {
  let f: SeveralServers | undefined;
  let fx: Fixture | undefined;
  let client: Etcd3;
  let store: Namespace;
  const people: Record<string, Person> = {};
  const have = (t: TestContext) => havePeer(t, 'etcd, HAProxy, kube-apiserver, kwok and kubectl', [...SEVERAL_SERVERS_PEERS(), ...PEERS()]);

  /** Which server holds the agent's newest tunnel, from the tunnel records the servers keep on their leases. */
  async function holder(not?: number): Promise<number> {
    const agent = fx!.agents[0]!.hostId();
    const found = await waitFor(
      `the agent's tunnel on a server${not === undefined ? '' : ` other than s${not}`}`,
      async () => {
        const records = Object.keys(await store.getAll().prefix(`/tunnels/${agent}/`).strings());
        const servers = records.map((k) => f!.servers.findIndex((_, i) => f!.alive(i) && k.endsWith(`/${f!.hostId(i)}`))).filter((i) => i >= 0 && i !== not);
        return servers.length > 0 ? { i: servers[0]! } : undefined;
      },
      { timeoutMs: 30_000 },
    );
    return found.i;
  }

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startSeveralServers();
    client = new Etcd3({ hosts: f.etcd.endpoints });
    store = client.namespace('/kport');
    // The agent joins and tunnels through the load balancer, as every agent is told to.
    fx = await startFixture({ roles: ROLES, on: f.front, agents: 1 });
    // Something for a watch to list (no controller-manager makes kube-root-ca.crt here).
    await fx.admin('create', 'configmap', 'settings', '-n', 'apps');
    for (const name of ['alice', 'carol']) {
      people[name] = await invitedPerson(f.front, name, ['prod-dev']);
      const wrote = await people[name].kport(['kube', 'config', CLUSTER]);
      assert.equal(wrote.exitCode, 0, String(wrote.stderr));
    }
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const s of f?.servers ?? []) process.stderr.write(`--- server ${s.address}\n${s.log.slice(-5000)}\n`);
    await fx?.stop();
    client?.close();
    await f?.stop();
  });

  test("kill -9 of the server holding the agent's tunnel: the request loop resumes, the watch ends and lists again, the exec ends, the audit keeps every answered request", async (t) => {
    if (!have(t)) return;
    const alice = people.alice!;
    const k = personKubectl(alice.home);
    const victim = await holder();
    // A request loop, each request named (loop-N) so the audit can be matched to it.
    const runs: Array<Ran & { n: number; started: number; ended: number }> = [];
    let killedAt = 0;
    let abandoned = false;
    t.after(() => {
      abandoned = true;
    });
    const loop = (async () => {
      for (let n = 0; !abandoned && (!killedAt || runs.filter((r) => r.started > killedAt + RESUME_MS).length < 5); n++) {
        const started = Date.now();
        const r = await k.run(['get', 'configmap', `loop-${n}`, '-n', 'apps', '--ignore-not-found', '--request-timeout=10s']);
        runs.push({ ...r, n, started, ended: Date.now() });
      }
    })();
    const watch = spawn(alice, ['get', 'configmaps', '-n', 'apps', '--watch', '-o', 'name']);
    const terminal = terminalExec(alice);
    const exec = terminal.get();
    // Typed into the shell once it runs; the answer (`ready-42`) is not the text typed, so its echo does not count.
    const typing = setInterval(() => terminal.type('echo ready-$((40+2))\n'), 1000);
    t.after(() => clearInterval(typing));
    t.after(async () => {
      for (const r of [watch, exec]) r.proc.kill('SIGKILL');
      await Promise.all([watch.proc, exec.proc]);
    });
    await waitFor(
      'the loop, the watch and the exec to run',
      async () => runs.filter((r) => r.code === 0).length >= 3 && watch.out.includes('configmap/') && exec.out.includes('ready-42'),
      { timeoutMs: 60_000 },
    ).catch((err: Error) => {
      const last = runs.at(-1);
      throw new Error(
        `${err.message}: ${runs.length} runs (last: ${last?.code} ${last?.stderr}); watch: ${watch.code} ${watch.out.slice(-200)} ${watch.err}; exec: ${exec.code} ${exec.out}`,
      );
    });
    clearInterval(typing);
    killedAt = Date.now();
    await f!.kill(victim);
    await loop;
    const moved = await holder(victim);
    t.diagnostic(`s${victim} killed; the agent's tunnel is now on s${moved}`);

    // The loop: every request started once the agent could have redialled succeeded.
    const late = runs.filter((r) => r.started > killedAt + RESUME_MS);
    for (const r of late) assert.equal(r.code, 0, `loop-${r.n} at +${r.started - killedAt} ms: ${r.stderr}`);
    const firstOk = runs.find((r) => r.started >= killedAt && r.code === 0);
    t.diagnostic(
      `first request answered after the kill: +${firstOk!.ended - killedAt} ms; failed after the kill: ${runs.filter((r) => r.started >= killedAt && r.code !== 0).length}`,
    );

    // The watch and the exec ran through the dead server's tunnel: both end, the exec non-zero.
    await waitFor('the watch and the exec to end', async () => watch.code !== undefined && exec.code !== undefined, { timeoutMs: 30_000 });
    assert.notEqual(exec.code, 0, exec.out);
    const said = exec.out.slice(exec.out.lastIndexOf('ready-42') + 'ready-42'.length).trim();
    assert.ok(said.length > 0, 'the exec says why it ended');
    t.diagnostic(`watch ended +${watch.endedAt - killedAt} ms (${watch.code}); exec -it ended +${exec.endedAt - killedAt} ms: ${said.split('\n').at(-1)}`);
    // A new watch lists again, what changed meanwhile included.
    await fx!.admin('create', 'configmap', 'after-kill', '-n', 'apps');
    const again = spawn(alice, ['get', 'configmaps', '-n', 'apps', '--watch', '-o', 'name']);
    t.after(async () => {
      again.proc.kill('SIGKILL');
      await again.proc;
    });
    await waitFor('the new watch to list', async () => again.out.includes('configmap/after-kill') || again.code !== undefined, { timeoutMs: 30_000 });
    assert.match(again.out, /configmap\/after-kill/);

    // The audit: every request answered more than a second before the kill is there (the server
    // that answered stored it; a server's last 50 ms of events may die with it), and every answered one after.
    const named = new Set((await auditEvents(f!.servers[moved]!)).filter((e) => e.spec.type === 'kube.request').map((e) => (e.spec as { name?: string }).name));
    const answered = runs.filter((r) => r.code === 0 && (r.ended < killedAt - 1000 || r.started > killedAt));
    const missing = answered.filter((r) => !named.has(`loop-${r.n}`)).map((r) => `loop-${r.n}`);
    assert.deepEqual(missing, [], `answered but not audited (of ${answered.length})`);
    await f!.restart(victim);
  });

  test("a lock (kport users lock on one server's host) ends the person's sessions on every server within a second", async (t) => {
    if (!have(t)) return;
    const carol = people.carol!;
    // One watch held on each live server, straight at its address.
    const live = f!.servers.map((_, i) => i).filter((i) => f!.alive(i));
    const watches = live.map((i) => watchAt(carol, f!.front.address, f!.servers[i]!.address));
    t.after(() => {
      for (const w of watches) w.close();
    });
    await waitFor(
      'the watches to list',
      async () => (await Promise.race([Promise.all(watches.map((w) => w.listed)).then(() => true), new Promise((r) => setTimeout(r, 100))])) === true,
      { timeoutMs: 30_000 },
    );
    // Written to the store on server 0's host; each server's watch of the store carries it to its sessions.
    const locked = await f!.front.kport(['users', 'lock', 'carol', '--message', 'several servers']);
    assert.equal(locked.exitCode, 0, String(locked.stderr));
    const lockedAt = Date.now();
    const ended = await Promise.all(
      watches.map((w) => Promise.race([w.ended, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 10_000))])),
    );
    t.diagnostic(`watches ended ${ended.map((at, n) => `s${live[n]}: +${at - lockedAt} ms`).join(', ')} after the lock command returned`);
    for (const [n, at] of ended.entries()) assert.ok(at - lockedAt <= 1000, `the watch on s${live[n]} ended ${at - lockedAt} ms after the lock`);
  });
});
