// kubectl through the server, end to end with real processes (issue 21 "Tests"): alice, whose role
// allows env=prod, reaches a cluster served by a Kubernetes agent (the built CLI, its own data dir,
// its own kubeconfig_file) through `kport server start`, with `kport kube config` and with
// `kport kube login -- kubectl`; get, apply, watch, logs -f, exec -it in a real pty and port-forward
// to kwok pods behind a real kube-apiserver, whose own audit log names her. bob (env=staging) gets
// the answer for a missing cluster and nothing reaches the agent; system:masters from alice is 403.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { invitedPerson } from '../helpers/login.ts';
import { forwardEcho, shellTwoLines } from '../helpers/terminal.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { criLogLine } from '../peers/kwok.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

type Person = Awaited<ReturnType<typeof invitedPerson>>;

describe("kubectl through the server to a Kubernetes agent's cluster", { concurrency: false, timeout: 900_000 }, () => {
  let f: Fixture;
  let alice: Person;
  let bob: Person;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl and kwok', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: ROLES });
    alice = await invitedPerson(f.server, 'alice', ['prod-dev']);
    bob = await invitedPerson(f.server, 'bob', ['staging-dev']);
    const wrote = await alice.kport(['kube', 'config', CLUSTER]);
    assert.equal(wrote.exitCode, 0, String(wrote.stderr));
  });
  after(async () => f?.stop());

  test("alice: get, apply, watch, logs -f, exec -it and port-forward work through the server, byte for byte; the apiserver's audit names her", async (t) => {
    if (!have(t)) return;
    const k = personKubectl(alice.home);
    const pods = await k.run(['get', 'pods', '-n', 'apps', '-o', 'name']);
    assert.equal(pods.code, 0, pods.stderr);
    assert.equal(pods.stdout, 'pod/web\n');
    const who = await k.run(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username} {.status.userInfo.extra.kport\\.dev/original-user}']);
    assert.equal(who.code, 0, who.stderr);
    assert.equal(who.stdout, 'alice ["alice"]');

    // apply: a ConfigMap whose data is every byte value that survives JSON, read back unchanged.
    const value = `${randomBytes(48).toString('base64')} ünïcødé \t"quotes" \\ end`;
    const manifest = join(alice.home, 'cm.yaml');
    writeFileSync(manifest, stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'apps' }, data: { value } }));
    const applied = await k.run(['apply', '-f', manifest]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(applied.stdout, 'configmap/settings created\n');
    const read = await k.run(['get', 'configmap', 'settings', '-n', 'apps', '-o', 'jsonpath={.data.value}']);
    assert.equal(read.stdout, value);

    // watch: an event made by the admin straight at the apiserver arrives through the tunnel.
    const watch = k.spawn(['get', 'configmaps', '-n', 'apps', '--watch', '-o', 'name']);
    let watched = '';
    watch.stdout!.on('data', (c: Buffer) => (watched += c));
    try {
      await waitFor("the watch's first list", async () => watched.includes('configmap/settings'), { timeoutMs: 30_000 });
      await f.admin('create', 'configmap', 'made-later', '-n', 'apps');
      await waitFor('the event through the watch', async () => watched.includes('configmap/made-later'), { timeoutMs: 30_000 });
    } finally {
      watch.kill('SIGKILL');
      await watch;
    }

    // logs, and logs -f with a line appended after it began.
    const logs = await k.run(['logs', '-n', 'apps', 'web']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'first line\nsecond line\n');
    const follow = k.spawn(['logs', '-f', '-n', 'apps', 'web']);
    let followed = '';
    follow.stdout!.on('data', (c: Buffer) => (followed += c));
    try {
      await waitFor('the existing lines', async () => followed.includes('second line\n'), { timeoutMs: 30_000 });
      appendFileSync(f.logsFile, criLogLine('written after follow began'));
      await waitFor('the appended line', async () => followed.includes('written after follow began\n'), { timeoutMs: 30_000 });
      assert.equal(followed, 'first line\nsecond line\nwritten after follow began\n');
    } finally {
      follow.kill('SIGTERM');
      await follow;
    }

    // exec without a tty: 1 MiB back whole.
    const big = await k.run(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'head -c 1048576 /dev/zero | tr "\\000" "x"']);
    assert.equal(big.code, 0, big.stderr);
    assert.equal(big.stdout, 'x'.repeat(1048576));

    // exec -it in a real pty (script gives kubectl a terminal): each command's output comes back. Two
    // lines, each typed after the last answer: the recorder once unmasked in place every client chunk
    // but the first, so a line that came after the terminal's size never reached the pod.
    await shellTwoLines(alice.home, 'marker');

    // port-forward: 256 KiB of random bytes both ways, equal.
    await forwardEcho(k.spawn, 256 * 1024);

    // The cluster's own audit log: every request of this test was made as alice, and says so.
    const mine = f.api.auditEvents().filter((e) => e.impersonatedUser?.username === 'alice');
    for (const verb of ['list', 'create', 'watch', 'get'])
      assert.ok(
        mine.some((e) => e.verb === verb),
        `an audited ${verb} as alice`,
      );
    for (const sub of ['/log', '/exec', '/portforward'])
      assert.ok(
        mine.some((e) => e.requestURI.includes(sub)),
        `an audited ${sub} as alice`,
      );
    for (const e of mine) {
      assert.deepEqual(e.impersonatedUser!.extra?.['kport.dev/original-user'], ['alice'], JSON.stringify(e));
      assert.match(e.impersonatedUser!.extra?.['kport.dev/session-id']?.[0] ?? '', /\S/);
    }
  });

  test('alice through `kport kube login CLUSTER -- kubectl` with her profile: the same cluster, as herself', async (t) => {
    if (!have(t)) return;
    const res = await alice.kport(['kube', 'login', CLUSTER, '--', BINARIES.kubectl(), 'get', 'pod', 'web', '-n', 'apps', '-o', 'name']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal(res.stdout, 'pod/web');
    const exec = await alice.kport(['kube', 'login', CLUSTER, '--', BINARIES.kubectl(), 'exec', '-n', 'apps', 'web', '--', 'echo', 'through-login']);
    assert.equal(exec.exitCode, 0, String(exec.stderr));
    assert.equal(exec.stdout, 'through-login');
    const last = f.api
      .auditEvents()
      .filter((e) => e.requestURI.includes('/exec') && e.impersonatedUser?.username === 'alice')
      .at(-1);
    assert.ok(last?.requestURI.includes('through-login'), 'the exec reached the apiserver as alice');
    assert.deepEqual(last.impersonatedUser!.extra?.['kport.dev/original-user'], ['alice']);
  });

  test("bob (env=staging) gets for alice's cluster the answer for a missing one, an audited denial, and no request reaches the agent; alice as system:masters: 403", async (t) => {
    if (!have(t)) return;
    const agent = f.agents[0]!;
    // What reached the agent or the apiserver as bob, or as system:masters: nothing may. (Counting all
    // lines instead raced the audit line of an earlier test's request, written when it ends.)
    const atAgent = () => agent.audit().filter((e) => e.impersonated_user === 'bob' || e.impersonated_groups.includes('system:masters'));
    const atApi = () =>
      f.api.auditEvents().filter((e) => e.impersonatedUser?.username === 'bob' || (e.impersonatedUser?.groups ?? []).includes('system:masters'));
    const asBob = personKubectl(bob.home);
    const [hiddenConfig, missingConfig] = [bobKubeconfig(bob, f.server.address, CLUSTER), bobKubeconfig(bob, f.server.address, 'no-such')];
    // Discovery and a get (kubectl prints its own words for a 404 there), then the raw answer (the server's).
    for (const args of [
      ['get', 'pods', '-n', 'apps'],
      ['get', '--raw', '/api/v1/namespaces/apps/pods'],
    ]) {
      const hidden = await asBob.run(['--kubeconfig', hiddenConfig, ...args]);
      const missing = await asBob.run(['--kubeconfig', missingConfig, ...args]);
      assert.equal(hidden.code, 1, hidden.stderr);
      assert.equal(missing.code, 1, missing.stderr);
      const same = (text: string, name: string) => text.replaceAll(name, 'X').replace(/^E\d{4} [\d:.]+ +\d+ /gm, '');
      assert.equal(same(hidden.stderr, CLUSTER), same(missing.stderr, 'no-such'));
      if (args[1] === '--raw') assert.match(hidden.stderr, new RegExp(`kube_cluster "${CLUSTER}" not found`));
    }
    // kport kube config says the same as for a cluster that does not exist, and writes nothing.
    const config = await bob.kport(['kube', 'config', CLUSTER]);
    assert.equal(config.exitCode, 1);
    assert.match(String(config.stderr), new RegExp(`kube_cluster "${CLUSTER}" not found`));

    const denied = await bob.kport(['get', 'audit', '--user', 'bob', '--format=json']);
    assert.equal(denied.exitCode, 4, 'bob may not read the audit trail');
    const audit = await f.server.kport(['get', 'audit', '--user', 'bob', '--cluster', CLUSTER, '--format=json']);
    assert.equal(audit.exitCode, 0, String(audit.stderr));
    const events = (JSON.parse(String(audit.stdout)) as Array<{ spec: { type: string; user: string; outcome: string; cluster?: string } }>).map((e) => e.spec);
    assert.ok(events.length > 0 && events.every((e) => e.user === 'bob' && e.cluster === CLUSTER), JSON.stringify(events));
    assert.ok(
      events.some((e) => e.type === 'kube.request' && e.outcome === 'refused'),
      JSON.stringify(events),
    );

    // alice asking to be system:masters: the server refuses it, and it reaches no agent either.
    const masters = await personKubectl(alice.home).run(['get', 'pods', '-n', 'apps', '--as=alice', '--as-group=system:masters']);
    assert.equal(masters.code, 1);
    assert.match(masters.stderr, /Forbidden.*impersonating group "system:masters" is not allowed by your kport roles/);

    assert.deepEqual(atAgent(), [], 'no request of theirs reached the agent');
    assert.deepEqual(atApi(), [], 'no request of theirs reached the apiserver');
  });
});

/** A kubeconfig for bob with his own login's certificate, for cluster `cluster` at the server (kport kube config would refuse to write it). */
function bobKubeconfig(bob: Person, address: string, cluster: string): string {
  const profile = join(bob.home, '.kport', 'profiles', address.replace(':', '_'));
  const file = join(bob.home, `${cluster}.kubeconfig`);
  const b64 = (name: string) => readFileSync(join(profile, name)).toString('base64');
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'k', cluster: { server: `https://${address}/k/${cluster}`, 'certificate-authority-data': b64('ca.pem') } }],
      users: [{ name: 'bob', user: { 'client-certificate-data': b64('cert.pem'), 'client-key-data': b64('key.pem') } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'bob' } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return file;
}
