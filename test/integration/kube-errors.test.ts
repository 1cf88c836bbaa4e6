// kport's own refusals, as real kubectl (1.28, 1.32, 1.34) and helm print them (issue 19): kubectl
// and helm start with discovery, which client-go reads without decoding a Status, so a refusal
// sent as a JSON Status printed as "unknown". Every kport-made error must print kport's sentence.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { kubeconfigYaml, startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { freePort, havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES, KUBERNETES_VERSION, OLD_KUBECTL_VERSIONS } from '../peers/versions.ts';

const exec = promisify(execFile);

describe("kport's own errors through kubectl and helm", { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let home: string;
  let env: Record<string, string>;
  let unreachablePort: number;
  const logins: ResultPromise[] = [];
  /** Each case: a kubeconfig (and context) of a running login, and the sentence kport answers with. */
  const cases: Array<{ name: string; kubeconfig: string; context: string; args: string[]; reason: RegExp }> = [];
  const kubectls = () => [...OLD_KUBECTL_VERSIONS.map((v) => [v, BINARIES.oldKubectl(v)] as const), [KUBERNETES_VERSION, BINARIES.kubectl()] as const];

  async function login(user: string, clusters: string[]): Promise<string> {
    const proc = execa(process.execPath, [KPORT_BIN, 'kube', 'login', ...clusters, '--user', user], { cwd: home, env, extendEnv: false, reject: false });
    logins.push(proc);
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    return waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]);
  }

  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver and kubectl', [BINARIES.kubeApiserver(), BINARIES.etcd(), ...kubectls().map(([, b]) => b)])) return;
    api = await startKubeApiserver();
    home = tempDir('kube-errors');
    env = await kubeHome(api, home, {
      roles: [
        { name: 'dev', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['developers'] },
        { name: 'two-users', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['ops'], kubernetes_users: ['dave', 'dave-admin'] },
      ],
      users: [
        { name: 'alice', roles: ['dev'] },
        { name: 'dave', roles: ['two-users'] },
      ],
    });
    // "unreachable" names a loopback port nothing listens on: every request gets kport's 502.
    unreachablePort = await freePort();
    const clusters = [
      { name: 'local-test', kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
      { name: 'unreachable', kubeconfig: kubeconfigYaml(`https://127.0.0.1:${unreachablePort}`, api.caPem, api.proxy) },
    ].map(({ name, kubeconfig }) => stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, labels: { env: 'test' } }, spec: { kubeconfig } }));
    writeFileSync(join(home, 'clusters.yaml'), clusters.join('---\n'));
    const created = await execa(process.execPath, [KPORT_BIN, 'create', '-f', join(home, 'clusters.yaml')], { env, extendEnv: false, reject: false });
    assert.equal(created.exitCode, 0, String(created.stderr));

    const alice = await login('alice', ['local-test', 'unreachable']);
    const dave = await login('dave', ['local-test']);
    // A kubeconfig left from a login of another cluster: the URL names a cluster this proxy does not serve.
    const stale = join(home, 'stale-kubeconfig');
    writeFileSync(stale, readFileSync(alice, 'utf8').replaceAll('/k/local-test', '/k/gone-cluster'), { mode: 0o600 });
    cases.push(
      {
        name: '403 several users',
        kubeconfig: dave,
        context: 'kport-local-test',
        args: [],
        reason: /several Kubernetes users are allowed \(dave, dave-admin\): pick one/,
      },
      {
        name: '403 not allowed',
        kubeconfig: alice,
        context: 'kport-local-test',
        args: ['--as=someone-else'],
        reason: /impersonating user "someone-else" is not allowed by your kport roles/,
      },
      {
        name: '502 unreachable',
        kubeconfig: alice,
        context: 'kport-unreachable',
        args: [],
        reason: new RegExp(`kport could not reach unreachable at 127\\.0\\.0\\.1:${unreachablePort}: connection refused`),
      },
      {
        name: '403 unknown cluster',
        kubeconfig: stale,
        context: 'kport-local-test',
        args: [],
        reason: /this kport proxy serves no cluster "gone-cluster": `kport kube ls` lists the clusters you may reach/,
      },
    );
  });
  after(async () => {
    for (const proc of logins) proc.kill('SIGINT');
    await Promise.all(logins);
    await api?.stop();
  });

  test('kubectl get pods and api-resources print the reason, kubectl 1.28, 1.32 and 1.34, with discovery not cached', async (t) => {
    if (!havePeer(t, 'kube-apiserver and kubectl', [BINARIES.kubeApiserver(), ...kubectls().map(([, b]) => b)])) return;
    // The same kubeconfig works for an allowed identity: the failures below are kport's refusals alone.
    const ok = await exec(BINARIES.kubectl(), [
      '--kubeconfig',
      cases[0]!.kubeconfig,
      '--cache-dir',
      mkdtempSync(join(home, 'cache-')),
      'api-resources',
      '--as=dave-admin',
    ]);
    assert.match(ok.stdout, /^pods\s/m);
    for (const [version, kubectl] of kubectls()) {
      for (const c of cases) {
        for (const command of [['get', 'pods'], ['api-resources']]) {
          // A fresh cache directory: kubectl asks discovery first, where the "unknown" came from.
          const args = ['--kubeconfig', c.kubeconfig, '--context', c.context, '--cache-dir', mkdtempSync(join(home, 'cache-')), ...c.args, ...command];
          const r = await execa(kubectl, args, { reject: false, env: { HOME: home }, extendEnv: false });
          const what = `kubectl ${version} ${command.join(' ')} (${c.name})`;
          assert.equal(r.exitCode, 1, `${what}: ${r.stderr}`);
          assert.match(String(r.stderr), c.reason, what);
          assert.doesNotMatch(String(r.stderr), /: unknown$|\("unknown"\)/m, what);
        }
      }
    }
  });

  test('kubectl get --raw of an API path, after discovery, prints the reason too', async (t) => {
    if (!havePeer(t, 'kube-apiserver and kubectl', [BINARIES.kubeApiserver(), BINARIES.kubectl()])) return;
    for (const c of cases) {
      const r = await execa(
        BINARIES.kubectl(),
        ['--kubeconfig', c.kubeconfig, '--context', c.context, ...c.args, 'get', '--raw', '/api/v1/namespaces/default/pods'],
        { reject: false, env: { HOME: home }, extendEnv: false },
      );
      assert.equal(r.exitCode, 1, c.name);
      assert.match(String(r.stderr), c.reason, c.name);
    }
  });

  test('helm list and helm install --dry-run print the reason', async (t) => {
    if (!havePeer(t, 'kube-apiserver and helm', [BINARIES.kubeApiserver(), BINARIES.helm()])) return;
    const chart = join(home, 'chart');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), stringify({ apiVersion: 'v2', name: 'demo', version: '0.1.0' }));
    writeFileSync(join(chart, 'templates', 'cm.yaml'), stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'demo' }, data: { a: 'b' } }));
    const helmEnv = {
      HOME: home,
      HELM_CACHE_HOME: join(home, 'helm-cache'),
      HELM_CONFIG_HOME: join(home, 'helm-config'),
      HELM_DATA_HOME: join(home, 'helm-data'),
    };
    for (const c of cases) {
      const as = c.args.map((a) => a.replace('--as=', '--kube-as-user='));
      for (const command of [['list'], ['install', 'demo', chart, '--dry-run']]) {
        const r = await execa(BINARIES.helm(), [...command, '--kubeconfig', c.kubeconfig, '--kube-context', c.context, ...as], {
          reject: false,
          env: helmEnv,
          extendEnv: false,
        });
        const what = `helm ${command[0]} (${c.name})`;
        assert.equal(r.exitCode, 1, `${what}: ${r.stderr}`);
        assert.match(String(r.stderr), c.reason, what);
      }
    }
  });
});
