// real kubectl -> kport kube login proxy -> real kube-apiserver -> kwok as the kubelet (issue 21):
// exec, logs, logs -f and port-forward on a simulated pod whose streams are local commands and files.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { clusterExec, clusterLogs, clusterPortForward, criLogLine, startKwok, type Kwok } from '../peers/kwok.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const run = promisify(execFile);
const PEERS = () => [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd(), BINARIES.kwok(), ...BINARIES.kwokStages()];

describe('exec, logs and port-forward through the kube login proxy to kwok pods', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let kwok: Kwok;
  let echo: Server;
  let home: string;
  let env: Record<string, string>;
  let logsFile: string;
  const kport = (args: string[]) => execa(process.execPath, [KPORT_BIN, ...args], { cwd: home, env, extendEnv: false, reject: false });
  const kubectlPath = BINARIES.kubectl();
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver and kwok', PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    // The pod's port-forward target: a local TCP server that sends back what it reads.
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    home = tempDir('kube-pods');
    logsFile = join(home, 'container.log');
    writeFileSync(logsFile, criLogLine('first line') + criLogLine('second line'));
    api = await startKubeApiserver({ kubeletClient: true });
    kwok = await startKwok(api, [clusterExec(), clusterLogs(logsFile), clusterPortForward((echo.address() as { port: number }).port)]);
    env = await kubeHome(api, home, {
      roles: [
        { name: 'operate', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['operators'] },
        { name: 'view', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['viewers'] },
      ],
      users: [
        { name: 'olga', roles: ['operate'] },
        { name: 'vic', roles: ['view'] },
      ],
    });
    const adminKubeconfig = api.kubeconfig(api.admin);
    const k = (...args: string[]) => run(kubectlPath, ['--kubeconfig', adminKubeconfig, ...args]);
    await k('create', 'namespace', 'apps');
    await k('create', 'clusterrole', 'operator', '--verb=get,list,create', '--resource=pods,pods/log,pods/exec,pods/portforward');
    await k('create', 'clusterrole', 'viewer', '--verb=get,list', '--resource=pods,pods/log');
    await k('create', 'rolebinding', 'operators', '--clusterrole=operator', '--group=operators', '-n', 'apps');
    await k('create', 'rolebinding', 'viewers', '--clusterrole=viewer', '--group=viewers', '-n', 'apps');
    await kwok.createPod('apps', 'web', { ports: [8080] });
    const cluster = {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'kwok', labels: { env: 'test' } },
      spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
    };
    writeFileSync(join(home, 'cluster.yaml'), stringify(cluster));
    assert.equal((await kport(['create', '-f', join(home, 'cluster.yaml')])).exitCode, 0);
  });
  after(async () => {
    await kwok?.stop();
    await api?.stop();
    echo?.close();
  });

  const login = (user: string, ...command: string[]) => kport(['kube', 'login', 'kwok', '--user', user, '--', ...command]);

  /** A foreground login for commands that run until stopped; gives its kubeconfig. */
  async function withProxy(user: string, fn: (kubeconfig: string) => Promise<void>): Promise<void> {
    const proxy = kport(['kube', 'login', 'kwok', '--user', user]);
    let out = '';
    proxy.stdout!.on('data', (c: Buffer) => (out += c));
    try {
      await fn(await waitFor('the export line', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1], { timeoutMs: 60_000 }));
    } finally {
      proxy.kill('SIGINT');
      await proxy;
    }
  }

  test('kubectl exec (WebSocket, kubectl 1.34 default) returns the command output byte for byte', async (t) => {
    if (!have(t)) return;
    const hello = await login('olga', kubectlPath, 'exec', '-n', 'apps', 'web', '--', 'echo', 'hello');
    assert.equal(hello.exitCode, 0, String(hello.stderr));
    assert.equal(hello.stdout, 'hello');
    // 1 MiB of output comes back whole, not cut at a frame or buffer boundary.
    const big = await login('olga', kubectlPath, 'exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'head -c 1048576 /dev/zero | tr "\\000" "x"');
    assert.equal(big.exitCode, 0, String(big.stderr));
    assert.equal(big.stdout, 'x'.repeat(1048576));
  });

  test('kubectl logs returns the CRI log lines; logs -f streams a line appended later', async (t) => {
    if (!have(t)) return;
    const logs = await login('olga', kubectlPath, 'logs', '-n', 'apps', 'web');
    assert.equal(logs.exitCode, 0, String(logs.stderr));
    assert.equal(logs.stdout, 'first line\nsecond line');
    await withProxy('olga', async (kubeconfig) => {
      const follow = execa(kubectlPath, ['--kubeconfig', kubeconfig, 'logs', '-f', '-n', 'apps', 'web'], { reject: false });
      let followed = '';
      follow.stdout!.on('data', (c: Buffer) => (followed += c));
      try {
        await waitFor('the existing lines', async () => followed.includes('second line\n'), { timeoutMs: 30_000 });
        appendFileSync(logsFile, criLogLine('written after follow began'));
        await waitFor('the appended line', async () => followed.includes('written after follow began\n'), { timeoutMs: 30_000 });
        assert.equal(followed, 'first line\nsecond line\nwritten after follow began\n');
      } finally {
        follow.kill('SIGTERM');
        await follow;
      }
    });
  });

  test('kubectl port-forward carries bytes both ways to the pod port', async (t) => {
    if (!have(t)) return;
    await withProxy('olga', async (kubeconfig) => {
      const forward = execa(kubectlPath, ['--kubeconfig', kubeconfig, 'port-forward', '-n', 'apps', 'pod/web', ':8080'], { reject: false });
      let printed = '';
      forward.stdout!.on('data', (c: Buffer) => (printed += c));
      forward.stderr!.on('data', (c: Buffer) => (printed += c));
      try {
        const port = Number(
          await waitFor('the forwarding line', async () => printed.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1], { timeoutMs: 30_000 }),
        );
        const sent = randomBytes(256 * 1024);
        const received = await new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          let length = 0;
          const socket = connect(port, '127.0.0.1', () => socket.write(sent));
          socket.on('data', (c: Buffer) => {
            chunks.push(c);
            length += c.length;
            if (length >= sent.length) {
              socket.destroy();
              resolve(Buffer.concat(chunks));
            }
          });
          socket.once('error', reject);
          socket.once('close', () => resolve(Buffer.concat(chunks)));
        });
        assert.equal(received.length, sent.length);
        assert.ok(received.equals(sent), 'the echoed bytes are the bytes sent');
      } finally {
        forward.kill('SIGTERM');
        await forward;
      }
    });
  });

  test('exec refused by the API server for a person whose groups lack pods/exec, who can still read the logs', async (t) => {
    if (!have(t)) return;
    const denied = await login('vic', kubectlPath, 'exec', '-n', 'apps', 'web', '--', 'echo', 'hello');
    assert.equal(denied.exitCode, 1);
    assert.equal(denied.stdout, '');
    assert.match(String(denied.stderr), /pods "web" is forbidden: User "vic" cannot create resource "pods\/exec" in API group "" in the namespace "apps"/);
    const logs = await login('vic', kubectlPath, 'logs', '-n', 'apps', 'web');
    assert.equal(logs.exitCode, 0, String(logs.stderr));
    assert.match(String(logs.stdout), /^first line$/m);
  });
});
