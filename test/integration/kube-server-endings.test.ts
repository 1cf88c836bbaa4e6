// What people's tools print when kport ends or refuses their Kubernetes requests through the server,
// with real kubectl, a real `kport server start`, a Kubernetes agent and kwok pods:
// - #8: a lock ends a watch and an exec: kubectl prints kport's sentence (the exec exits 1; kubectl
//   get -w exits 0 however its watch ends), and so does a watch whose agent goes away.
// - #9: a cluster not allowed (or missing), or served by no agent, reads as kport's sentence at
//   kubectl's first call (discovery); `kube ls` marks a cluster no agent serves now.
// - attack #12/#13: require_session_recording refuses upgrades to a kubelet (nodes/NAME/proxy/exec),
//   `/k/NAME?query` names cluster NAME, and a forged `Upgrade: websocket, SPDY/3.1` gets a 400 at once.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const RECORDED = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'prod-recorded' },
  spec: { options: { require_session_recording: true }, allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } },
};

describe("kport's endings and refusals as kubectl prints them, through the server", { concurrency: false, timeout: 900_000 }, () => {
  let f: Fixture;
  const people: Record<string, Person> = {};
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl and kwok', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: [...ROLES, RECORDED] });
    // Something for watches to list first (no controller-manager runs here to make kube-root-ca.crt).
    await f.admin('create', 'configmap', 'listed', '-n', 'apps');
    for (const [name, role] of [
      ['alice', 'prod-dev'],
      ['carol', 'prod-dev'],
      ['bob', 'staging-dev'],
      ['rita', 'prod-recorded'],
    ] as const) {
      people[name] = await invitedPerson(f.server, name, [role]);
      if (name !== 'bob') assert.equal((await people[name]!.kport(['kube', 'config', CLUSTER])).exitCode, 0);
    }
  });
  after(async () => f?.stop());

  /** A long-running kubectl of `who`, its output gathered, its end noted. */
  function spawn(who: Person, args: string[]) {
    const proc = personKubectl(who.home).spawn(args);
    const run = { out: '', err: '', code: undefined as number | undefined, proc };
    proc.stdout!.on('data', (c: Buffer) => (run.out += c));
    proc.stderr!.on('data', (c: Buffer) => (run.err += c));
    void proc.then((r) => (run.code = r.exitCode ?? -1));
    return run;
  }

  test("#8: users lock ends carol's kubectl get -w, exec (WebSocket), logs -f (also through kube login) and port-forward: all but port-forward print kport's sentence, and all but get -w exit 1", async (t) => {
    if (!have(t)) return;
    const carol = people.carol!;
    const watch = spawn(carol, ['get', 'configmaps', '-n', 'apps', '--watch']);
    const exec = spawn(carol, ['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo ready; exec sleep 300']);
    const logs = spawn(carol, ['logs', '-f', '-n', 'apps', 'web']);
    const forward = spawn(carol, ['port-forward', '-n', 'apps', 'pod/web', ':8080']);
    // Through kport kube login's local proxy, which forwards to the server: the same last line.
    const viaLogin = carol.kport(['kube', 'login', CLUSTER, '--', BINARIES.kubectl(), 'logs', '-f', '-n', 'apps', 'web']);
    const login = { out: '', err: '', code: undefined as number | undefined, proc: viaLogin };
    viaLogin.stdout!.on('data', (c: Buffer) => (login.out += c));
    viaLogin.stderr!.on('data', (c: Buffer) => (login.err += c));
    void viaLogin.then((r) => (login.code = r.exitCode ?? -1));
    const all = [watch, exec, logs, forward, login];
    t.after(async () => {
      for (const r of all) r.proc.kill('SIGKILL');
      await Promise.all(all.map((r) => r.proc));
    });
    await waitFor('the exec to run', async () => exec.out.includes('ready') || exec.code !== undefined, { timeoutMs: 60_000 });
    await waitFor('the watch to list', async () => watch.out.includes('listed') || watch.code !== undefined, { timeoutMs: 60_000 });
    await waitFor(
      'the log lines',
      async () => (logs.out.includes('second line\n') && login.out.includes('second line\n')) || logs.code !== undefined || login.code !== undefined,
      { timeoutMs: 60_000 },
    );
    await waitFor('the port-forward', async () => forward.out.includes('Forwarding from') || forward.code !== undefined, { timeoutMs: 60_000 });
    for (const r of all) assert.equal(r.code, undefined, r.err);
    const locked = await f.server.kport(['users', 'lock', 'carol', '--message', 'incident 42']);
    assert.equal(locked.exitCode, 0, String(locked.stderr));
    await waitFor('all five to end', async () => all.every((r) => r.code !== undefined), { timeoutMs: 60_000 });
    const sentence = /user carol is locked \(incident 42\): ask an editor to run kport users unlock carol/;
    // exec: kport's sentence as kubectl's error, exit 1 (not "close 1006 (abnormal closure)").
    assert.equal(exec.code, 1, exec.err);
    assert.match(exec.err, sentence);
    assert.doesNotMatch(exec.err, /1006|abnormal closure/);
    // kubectl get -w exits 0 however its watch ends (get.go drops the watch's error): the watch's
    // last event, kport's Status, is its last row, with the sentence.
    assert.match(watch.out, new RegExp(`STATUS +REASON +MESSAGE\\nFailure +Forbidden +.*${sentence.source}`), watch.out);
    // logs -f: kport's sentence as the log's last line, then a reset (exit 1, not a clean end).
    assert.match(logs.out, new RegExp(`^first line\\nsecond line\\nkport: .*${sentence.source}\\.\\n$`), logs.out);
    assert.equal(logs.code, 1, logs.err);
    assert.match(login.out, new RegExp(`^first line\\nsecond line\\nkport: .*${sentence.source}\\.\\n$`), login.out);
    assert.equal(login.code, 1, login.err);
    // port-forward has no channel for words: it ends non-zero.
    assert.notEqual(forward.code, 0, forward.err);
  });

  test("#8 and #9: the agent goes away: a watch prints why, kube ls says no agent serves the cluster, kubectl's first call prints kport's sentence; back once the agent is", async (t) => {
    if (!have(t)) return;
    const alice = people.alice!;
    const ls = async () => {
      const res = await alice.kport(['kube', 'ls', '--format=json']);
      assert.equal(res.exitCode, 0, String(res.stderr));
      return JSON.parse(String(res.stdout)) as Array<{ kube_cluster_name: string; served?: boolean }>;
    };
    assert.deepEqual(
      (await ls()).map((c) => [c.kube_cluster_name, c.served]),
      [[CLUSTER, true]],
    );
    const table = await alice.kport(['kube', 'ls']);
    assert.match(String(table.stdout), new RegExp(`^Kube Cluster Name\\tLabels\\tSelected\\tServed\\n${CLUSTER}\\t[^\\t]*\\t\\*?\\tyes$`));

    const watch = spawn(alice, ['get', 'configmaps', '-n', 'apps', '--watch']);
    t.after(async () => {
      watch.proc.kill('SIGKILL');
      await watch.proc;
    });
    await waitFor('the watch to list', async () => watch.out.includes('listed') || watch.code !== undefined, { timeoutMs: 60_000 });
    const agent = f.agents[0]!;
    await agent.kill();
    await waitFor('the watch to end', async () => watch.code !== undefined, { timeoutMs: 60_000 });
    assert.match(watch.out, new RegExp(`Failure +ServiceUnavailable +the kport agent serving ${CLUSTER} went away .*: run this command again`), watch.out);

    await waitFor('kube ls to say no agent serves it', async () => (await ls())[0]?.served === false, { timeoutMs: 30_000 });
    const none = await alice.kport(['kube', 'ls']);
    assert.match(String(none.stdout), new RegExp(`${CLUSTER}\\t[^\\t]*\\t\\*?\\tno agent$`));
    // kubectl's first call is discovery: it prints kport's sentence, not "unable to handle the request".
    const get = await personKubectl(alice.home).run(['get', 'pods', '-n', 'apps']);
    assert.equal(get.code, 1);
    assert.match(get.stderr, new RegExp(`no agent serves ${CLUSTER} right now: its Kubernetes agents are down`));
    assert.doesNotMatch(get.stderr, /currently unable to handle the request/);

    agent.start();
    await f.waitServed([agent]);
    await waitFor('kube ls to say it is served again', async () => (await ls())[0]?.served === true, { timeoutMs: 30_000 });
  });

  test("#9: a cluster bob may not reach, and one that does not exist: kubectl's first call prints the same sentence naming kube ls", async (t) => {
    if (!have(t)) return;
    const bob = people.bob!;
    const hidden = await personKubectl(bob.home).run(['--kubeconfig', kubeconfigFor(bob, f.server.address, CLUSTER), 'get', 'pods', '-n', 'apps']);
    const missing = await personKubectl(bob.home).run(['--kubeconfig', kubeconfigFor(bob, f.server.address, 'no-such'), 'get', 'pods', '-n', 'apps']);
    for (const [name, res] of [
      [CLUSTER, hidden],
      ['no-such', missing],
    ] as const) {
      assert.equal(res.code, 1);
      assert.match(res.stderr, new RegExp(`kube_cluster "${name}" not found: \`kport kube ls\` lists the clusters you can reach`), res.stderr);
      assert.doesNotMatch(res.stderr, /could not find the requested resource/);
    }
    const same = (text: string, name: string) => text.replaceAll(name, 'X').replace(/^E\d{4} [\d:.]+ +\d+ /gm, '');
    assert.equal(same(hidden.stderr, CLUSTER), same(missing.stderr, 'no-such'));
    // helm too ("Kubernetes cluster unreachable: unknown" for a Status body).
    if (!havePeer(t, 'helm', [BINARIES.helm()])) return;
    const helm = await execa(BINARIES.helm(), ['list'], {
      env: { HOME: bob.home, PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfigFor(bob, f.server.address, CLUSTER) },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    assert.notEqual(helm.exitCode, 0);
    assert.match(
      String(helm.stderr),
      new RegExp(`Kubernetes cluster unreachable: kube_cluster "${CLUSTER}" not found: \`kport kube ls\` lists the clusters you can reach`),
    );
  });

  test('attack #12: under require_session_recording an upgrade to a kubelet (nodes/NAME/proxy/exec) is refused and reaches no agent; without it, it reaches the cluster', async (t) => {
    if (!have(t)) return;
    const path = `/k/${CLUSTER}/api/v1/nodes/${f.kwok.node}/proxy/exec/apps/web/web?command=id&output=1`;
    // Upgrades to the kubelet at the agent, as one person: what reached it (other requests' lines may land meanwhile).
    const kubeletUpgrades = (who: string) => f.agents[0]!.audit().filter((e) => e.impersonated_user === who && e.path.includes('/proxy/exec/'));
    const refused = await rawUpgrade(people.rita!, f.server, path, 'websocket');
    assert.match(refused.head, /^HTTP\/1\.1 403/);
    assert.match(refused.body, /require_session_recording.*a kubelet \(nodes\/NAME\/proxy\/exec\/apps\/web\/web\).*use kubectl exec/);
    assert.deepEqual(kubeletUpgrades('rita'), [], 'no request reached the agent');
    // alice's roles do not require recording: the same upgrade goes to the cluster (whatever its kubelet answers).
    const passed = await rawUpgrade(people.alice!, f.server, path, 'websocket');
    assert.doesNotMatch(passed.body, /require_session_recording/);
    await waitFor("alice's upgrade at the agent", async () => kubeletUpgrades('alice').length > 0, { timeoutMs: 30_000 });
    // rita's own exec is recorded, as before.
    const exec = await personKubectl(people.rita!.home).run(['exec', '-n', 'apps', 'web', '--', 'echo', 'recorded']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'recorded\n');
  });

  test('attack #13: /k/NAME?query is cluster NAME; a forged Upgrade: websocket, SPDY/3.1 is answered 400 at once', async (t) => {
    if (!have(t)) return;
    const alice = people.alice!;
    // The apiserver answers for its root (alice's roles grant no non-resource path): kport does not say the cluster is missing.
    const direct = await rawGet(alice, f.server, `/k/${CLUSTER}?timeout=30s`);
    assert.match(direct.body, /User \\"alice\\" cannot get path \\"\/\\"/);
    assert.doesNotMatch(direct.body, /not found/);
    const started = Date.now();
    const forged = await rawUpgrade(alice, f.server, `/k/${CLUSTER}/api/v1/namespaces/apps/pods/web/exec?command=id&stdout=1`, 'websocket, SPDY/3.1');
    assert.match(forged.head, /^HTTP\/1\.1 400/);
    assert.match(forged.body, /Upgrade header must name one protocol, websocket or SPDY\/3\.1/);
    assert.ok(Date.now() - started < 5_000, `answered after ${Date.now() - started} ms`);
  });
});

/** A kubeconfig for `who` with their login's certificate, for `cluster` at the server (kport kube config would refuse a cluster not allowed). */
function kubeconfigFor(who: Person, address: string, cluster: string): string {
  const profile = join(who.home, '.kport', 'profiles', address.replace(':', '_'));
  const file = join(who.home, `${cluster}.kubeconfig`);
  const b64 = (name: string) => readFileSync(join(profile, name)).toString('base64');
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'k', cluster: { server: `https://${address}/k/${cluster}`, 'certificate-authority-data': b64('ca.pem') } }],
      users: [{ name: 'u', user: { 'client-certificate-data': b64('cert.pem'), 'client-key-data': b64('key.pem') } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return file;
}

function tlsOf(who: Person, address: string) {
  const profile = join(who.home, '.kport', 'profiles', address.replace(':', '_'));
  return {
    cert: readFileSync(join(profile, 'cert.pem'), 'utf8'),
    key: readFileSync(join(profile, 'key.pem'), 'utf8'),
    ca: readFileSync(join(profile, 'ca.pem'), 'utf8'),
    servername: 'localhost',
  };
}

/** One HTTP/1.1 exchange on its own TLS connection: the answer's head and whatever body came within 10 s. */
function exchange(who: Person, server: { port: number; address: string }, request: string): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, ...tlsOf(who, server.address), ALPNProtocols: ['http/1.1'] }, () =>
      socket.write(request),
    );
    let seen = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = seen.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no answer: ${JSON.stringify(text)}`));
      resolve({ head: text.slice(0, end), body: seen.subarray(end + 4).toString('utf8') });
    };
    const timer = setTimeout(done, 10_000);
    socket.on('data', (c: Buffer) => {
      seen = Buffer.concat([seen, c]);
      const text = seen.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length:\s*(\d+)/i.exec(text.slice(0, end))?.[1];
      if (end >= 0 && (/^HTTP\/1\.1 101/.test(text) || (length !== undefined && seen.length - end - 4 >= Number(length)))) done();
    });
    socket.once('error', reject);
    socket.once('close', done);
  });
}

function rawUpgrade(who: Person, server: { port: number; address: string }, path: string, upgrade: string) {
  return exchange(
    who,
    server,
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
  );
}

async function rawGet(who: Person, server: { port: number; address: string }, path: string): Promise<{ status: number; body: string }> {
  const { head, body } = await exchange(who, server, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), body };
}
