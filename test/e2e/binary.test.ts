// The built CLI end to end (docs/style.md 14), twice: under this Node (bin/kport.js) and as the single
// executable (scripts/sea.ts, built here if its inputs changed). The same assertions for both: each
// path below loads code the executable must carry inside it (node:sqlite, the AWS SDK, etcd3's gRPC
// and its .proto definitions, the kube proxy, the network server and its agents, completions).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { kubeClusters, setupAgent } from '../helpers/agent.ts';
import { cliNamed, runCli, type Cli } from '../helpers/cli.ts';
import { fileApiserver, fileMoto } from '../helpers/file-peers.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { invitedPerson } from '../helpers/login.ts';
import { networkAgent, serverClusters, startServer, type TestServer } from '../helpers/network.ts';
import { tempHome } from '../helpers/run.ts';
import { createClusters } from '../peers/aws.ts';
import { startEtcd } from '../peers/etcd.ts';
import type { Moto } from '../peers/moto.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const EKS = [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'e2e' } }];

// One kube-apiserver and one moto for the file (helpers/file-peers.ts), not four and two: what the
// tests of either CLI add to them (a binding, a kport home) does not collide.
let tagged: Promise<Moto> | undefined;
const taggedMoto = () =>
  (tagged ??= fileMoto().then(async (moto) => {
    await createClusters(moto, [
      { name: 'c0', region: 'us-east-1', tags: { env: 'e2e' } },
      { name: 'c1', region: 'us-east-1', tags: { env: 'e2e' } },
    ]);
    return moto;
  }));

for (const which of ['node', 'binary'] as const) {
  describe(`the built CLI (${which})`, { concurrency: false, timeout: 300_000 }, () => {
    let cli: Cli;
    // Nothing from the test's own environment: no NODE_OPTIONS, no node_modules to fall back on.
    const kport = (home: string) => (args: string[]) =>
      runCli(cli, args, { cwd: home, env: { HOME: home, XDG_DATA_HOME: join(home, 'data'), KPORT_CONFIG: '' }, extendEnv: false, reject: false });

    before(async () => {
      cli = await cliNamed(which);
    });

    test('kport version says how it runs', async () => {
      const run = kport(tempHome());
      const json = JSON.parse(String((await run(['version', '-o', 'json'])).stdout));
      assert.equal(json.runtime, which);
      assert.match(json.version, /^\d+\.\d+\.\d+/);
      assert.equal(json.version, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
      const text = String((await run(['version'])).stdout);
      assert.match(text, which === 'binary' ? /^kport v\S+ binary \(node v\d+\.\d+\.\d+\) linux\// : /^kport v\S+ node v\d+\.\d+\.\d+ /);
      if (which === 'binary' && !process.env.KPORT_TEST_BINARY) {
        // Each chunk's code cache, made at build time, is accepted by the Node inside (else start-up
        // compiles it all). Not for a KPORT_TEST_BINARY: the arm64 build has none.
        const debug = await runCli(cli, ['kube', 'ls'], { env: { HOME: tempHome(), KPORT_SEA_DEBUG: '1' }, extendEnv: false, reject: false });
        assert.doesNotMatch(String(debug.stderr), /no code cache/);
      }
    });

    test('the guide flow: tokens add --format=text > file, tokens ls without the secret, get kube_cluster empty', async () => {
      const home = tempHome();
      const run = kport(home);
      const add = await run(['tokens', 'add', '--type=discovery,kube', '--format=text']);
      assert.equal(add.exitCode, 0, String(add.stderr));
      const secret = String(add.stdout).trim();
      assert.match(secret, /^[0-9a-f]{16}\.[0-9a-f]{32}$/);
      const ls = await run(['tokens', 'ls']);
      assert.equal(ls.exitCode, 0);
      assert.match(String(ls.stdout), /^tok-[0-9a-f]{16}\tDiscovery,Kube\tunlimited\t\t\d{4}-\d\d-\d\dT/m);
      assert.ok(!String(ls.stdout).includes(secret));
      for (const f of readdirSync(join(home, 'data', 'kport'))) assert.ok(!readFileSync(join(home, 'data', 'kport', f)).includes(secret));
      const empty = await run(['get', 'kube_cluster', '--format=json']);
      assert.equal(empty.exitCode, 0);
      assert.equal(empty.stdout, '[]');
    });

    test('errors are one line on stderr with the documented exit code; --debug adds the stack', async () => {
      const home = tempHome();
      const run = kport(home);
      const bad = await run(['tokens', 'add', '--type=nope']);
      assert.equal(bad.exitCode, 2);
      assert.equal(bad.stdout, '');
      assert.equal(String(bad.stderr).split('\n').length, 1);
      const debug = await run(['tokens', 'add', '--type=nope', '--debug']);
      assert.match(String(debug.stderr), /at normalizeRoles/);
      const badConfig = await run(['get', 'kube_cluster', '-c', join(home, 'missing.yaml')]);
      assert.equal(badConfig.exitCode, 2);
      assert.match(String(badConfig.stderr), /missing\.yaml does not exist/);
    });

    test('completion output matches the committed scripts', async () => {
      const run = kport(tempHome());
      for (const shell of ['bash', 'zsh', 'fish']) {
        const out = await run(['completion', shell]);
        assert.equal(`${out.stdout}\n`, readFileSync(new URL(`../../completions/kport.${shell}`, import.meta.url), 'utf8'));
      }
    });

    test('on a terminal, discover run draws the ink dashboard (react, yoga-layout wasm)', async (t) => {
      if (!existsSync('/usr/bin/script')) return void t.skip('needs script(1) from util-linux for a terminal');
      const home = tempHome();
      const config = join(home, 'kport.yaml');
      writeFileSync(
        config,
        stringify({
          version: 'v3',
          teleport: { data_dir: join(home, 'data') },
          discovery_service: { enabled: 'yes', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
        }),
      );
      const env = {
        HOME: home,
        PATH: process.env.PATH ?? '',
        KPORT_CONFIG: config,
        AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
        AWS_ACCESS_KEY_ID: 'x',
        AWS_SECRET_ACCESS_KEY: 'y',
        AWS_REGION: 'us-east-1',
      };
      const token = await runCli(cli, ['tokens', 'add', '--type=discovery', '--format=text'], { cwd: home, env, extendEnv: false, reject: false });
      const command = [cli.file, ...cli.prefix, 'discover', 'run', '--once', '--token', String(token.stdout).trim()].map((a) => `'${a}'`).join(' ');
      const res = await execa('script', ['-qec', command, '/dev/null'], { cwd: home, env, extendEnv: false, reject: false });
      // The dashboard's own line, then the summary; AWS is unreachable on purpose (exit 1, said).
      assert.match(String(res.stdout), /last poll: 0 clusters/);
      assert.match(String(res.stdout), /cannot reach AWS: connection refused/);
      assert.doesNotMatch(String(res.stdout), /bug in kport/);
    });

    describe('against moto', () => {
      let moto: Moto | undefined;
      before(async () => {
        if (!existsSync(BINARIES.motoServer())) return;
        moto = await taggedMoto();
      });

      test('discover run --once records the tagged clusters (AWS SDK, sqlite store)', async (t) => {
        if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
        const agent = await setupAgent(moto!, tempDir(`e2e-${which}`), { group: 'e2e', matchers: EKS, cli });
        const run = await agent.kport(['discover', 'run', '--once']);
        assert.equal(run.exitCode, 0, String(run.stderr));
        assert.deepEqual((await kubeClusters(agent)).map((c) => c.spec.aws.name).sort(), ['c0', 'c1']);
      });

      test('server start on etcd (gRPC, .proto definitions), an agent joins with a token and the CA pin and discovers', async (t) => {
        if (!havePeer(t, 'moto and etcd', [BINARIES.motoServer(), BINARIES.etcd()])) return;
        const etcd = await startEtcd({ members: 1 });
        const server = await startServer({ cli, storage: { type: 'etcd', peers: etcd.endpoints, prefix: `/kport-${randomUUID()}` } });
        try {
          const agent = await networkAgent(moto!, server, { name: which, group: 'e2e', matchers: EKS, cli });
          const run = await agent.start(['discover', 'run', '--once']);
          assert.equal(run.exitCode, 0, agent.log);
          assert.deepEqual((await serverClusters(server)).map((c) => c.metadata.name).sort(), [
            'c0-eks-us-east-1-123456789012',
            'c1-eks-us-east-1-123456789012',
          ]);
        } finally {
          await server.stop();
          await etcd.stop();
        }
      });
    });

    test('kube login CLUSTER -- kubectl get ns against kube-apiserver', async (t) => {
      if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
      const api = await fileApiserver();
      const home = tempDir(`e2e-kube-${which}`);
      const env = await kubeHome(
        api,
        home,
        { roles: [{ name: 'ops', kubernetes_labels: { env: 'test' }, kubernetes_groups: ['ops'] }], users: [{ name: 'bob', roles: ['ops'] }] },
        cli,
      );
      await promisify(execFile)(BINARIES.kubectl(), [
        '--kubeconfig',
        api.kubeconfig(api.admin),
        'create',
        'clusterrolebinding',
        `ops-view-${which}`,
        '--clusterrole=cluster-admin',
        '--group=ops',
      ]);
      const cluster = {
        kind: 'kube_cluster',
        version: 'v3',
        metadata: { name: 'local-test', labels: { env: 'test' } },
        spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
      };
      writeFileSync(join(home, 'cluster.yaml'), stringify(cluster));
      const opts = { cwd: home, env, extendEnv: false, reject: false } as const;
      assert.equal((await runCli(cli, ['create', '-f', join(home, 'cluster.yaml')], opts)).exitCode, 0);
      const r = await runCli(cli, ['kube', 'login', 'local-test', '--user', 'bob', '--', BINARIES.kubectl(), 'get', 'ns', '-o', 'name'], opts);
      assert.equal(r.exitCode, 0, String(r.stderr));
      assert.match(String(r.stdout), /namespace\/kube-system/);
    });

    test('kube config through a server writes an exec plugin that kubectl runs as written: kubectl get ns reaches the cluster', async (t) => {
      if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
      const api = await fileApiserver();
      let server: TestServer | undefined;
      try {
        await kubeHome(api, tempDir(`e2e-kube-config-rbac-${which}`), { roles: [], users: [] }, cli);
        await promisify(execFile)(BINARIES.kubectl(), [
          '--kubeconfig',
          api.kubeconfig(api.admin),
          'create',
          'clusterrolebinding',
          `devs-admin-${which}`,
          '--clusterrole=cluster-admin',
          '--group=developers',
        ]);
        server = await startServer({ cli, kubernetes: { enabled: 'yes', resources: [{ labels: { env: 'dev' } }] } });
        const setup = join(server.dir, 'setup.yaml');
        writeFileSync(
          setup,
          [
            stringify({
              kind: 'role',
              version: 'v7',
              metadata: { name: 'dev-access' },
              spec: { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['developers'] } },
            }),
            stringify({
              kind: 'kube_cluster',
              version: 'v3',
              metadata: { name: 'dev-static', labels: { env: 'dev' } },
              spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') },
            }),
          ].join('---\n'),
        );
        const created = await server.kport(['create', '-f', setup]);
        assert.equal(created.exitCode, 0, String(created.stderr));
        const alice = await invitedPerson(server, 'alice', ['dev-access'], undefined, {}, cli);
        await waitFor(
          'the server to serve dev-static',
          async () => {
            const res = await server!.kport(['get', 'kube_server', '-o', 'json']);
            return (
              res.exitCode === 0 &&
              (JSON.parse(String(res.stdout)) as Array<{ spec: { clusters: string[] } }>).some((s) => s.spec.clusters.includes('dev-static'))
            );
          },
          { timeoutMs: 60_000 },
        );
        const config = await alice.kport(['kube', 'config', 'dev-static']);
        assert.equal(config.exitCode, 0, String(config.stderr));
        const kubeconfig = join(alice.home, '.kube', 'config');
        // The plugin is this kport by absolute path, its own words after it: no path repeated as a command.
        const exec = (parse(readFileSync(kubeconfig, 'utf8')) as { users: Array<{ user: { exec: { command: string; args: string[] } } }> }).users[0]!.user.exec;
        assert.deepEqual(exec.args, [...cli.prefix, 'kube', 'credentials', 'dev-static', '--proxy', server.address]);
        // A KPORT_TEST_BINARY wrapper (qemu-user) is not what runs inside: the plugin names the executable itself, which kubectl can run only where the kernel runs it.
        if (process.env.KPORT_TEST_BINARY) return void t.diagnostic(`exec plugin ${exec.command}: kubectl through it not run under KPORT_TEST_BINARY`);
        assert.equal(exec.command, cli.file);
        const ns = await execa(BINARIES.kubectl(), ['get', 'ns', '-o', 'name'], {
          env: { HOME: alice.home, PATH: '/nonexistent', KUBECONFIG: kubeconfig },
          extendEnv: false,
          reject: false,
          stdin: 'ignore',
        });
        assert.equal(ns.exitCode, 0, String(ns.stderr));
        assert.match(String(ns.stdout), /^namespace\/kube-system$/m);
      } finally {
        await server?.stop();
      }
    });
  });
}
