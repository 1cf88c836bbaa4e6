// How kport starts, ends and says so (issue 19): one-shot runs that end when the server is
// unreachable, exit codes after signals, a status that shows who leads now, configs found by
// searching that never run code. The built CLI in real processes; AWS is a closed port (polls fail
// fast) or a server that never answers (a poll stays in flight).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { auditEvents, networkAgent, startServer, timeoutsEnv, type NetworkAgent, type TestServer } from '../helpers/network.ts';
import type { Moto } from '../peers/moto.ts';
import { freePort, tempDir, waitFor } from '../peers/process.ts';

/** AWS that refuses every connection: polls fail at once, so agents lead, heartbeat and stop without moto. */
const NO_AWS = {
  env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1' },
} as unknown as Moto;
const MATCHERS = [{ types: ['eks'], regions: ['us-east-1'] }];
/** How long `discover run --once` waits for an unreachable server: 30 s, scaled down for the tests that wait it out. */
const GIVE_UP = { onceUnreachableMs: 2000 };

/** An agent config for a server that is not there, and a way to run kport with it (its waits shortened by `timeouts`). */
function unreachableAgent(proxyServer: string, timeouts?: typeof GIVE_UP) {
  const dir = tempDir('unreachable');
  const config = join(dir, 'kport.yaml');
  writeFileSync(join(dir, 'token'), 'x'.repeat(32));
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(dir, 'data'), proxy_server: proxyServer, join_params: { token_name: join(dir, 'token'), method: 'token' } },
      auth_service: { enabled: 'off' },
      proxy_service: { enabled: 'off' },
      discovery_service: { enabled: 'yes', aws: MATCHERS },
    }),
  );
  return (args: string[]) =>
    execa(process.execPath, [KPORT_BIN, '-c', config, ...args], {
      cwd: dir,
      env: { ...timeoutsEnv(timeouts), HOME: dir, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
}

function collect(proc: ResultPromise): { text: () => string } {
  let text = '';
  proc.stderr!.on('data', (c: Buffer) => (text += c));
  return { text: () => text };
}

describe('lifecycle: one-shot runs end, signals give consistent exit codes', { timeout: 180_000 }, () => {
  test('discover run --once gives up on an unreachable server (refused; a name that does not resolve, with no port) with exit 1 and one sentence', async () => {
    const closed = await freePort();
    const cases: Array<[string, RegExp]> = [
      [
        `127.0.0.1:${closed}`,
        new RegExp(
          `^ERROR: The kport server at 127\\.0\\.0\\.1:${closed} is unreachable: connection refused \\(ECONNREFUSED 127\\.0\\.0\\.1:${closed}\\); --once gave up after 2 s: start the server, or correct teleport\\.proxy_server, and run again\\.$`,
          'm',
        ),
      ],
      // No port: 3080 is Teleport's default for proxy_server, and the sentence says it was tried.
      [
        'kport-lifecycle-test.invalid',
        /^ERROR: The kport server at kport-lifecycle-test\.invalid:3080 is unreachable: DNS (name not found \(ENOTFOUND|lookup failed for now \(EAI_AGAIN) kport-lifecycle-test\.invalid\) \(teleport\.proxy_server "kport-lifecycle-test\.invalid" names no port, so 3080, Teleport's default, was tried\); --once gave up after 2 s/m,
      ],
    ];
    await Promise.all(
      cases.map(async ([address, sentence]) => {
        const res = await unreachableAgent(address, GIVE_UP)(['discover', 'run', '--once']);
        assert.equal(res.exitCode, 1, `${address}: ${res.stderr}`);
        const stderr = String(res.stderr);
        assert.match(stderr, sentence);
        assert.equal(stderr.match(/^ERROR:/gm)?.length, 1, stderr);
        assert.doesNotMatch(stderr, /bug|\n\s+at /);
      }),
    );
  });

  test('signals: a one-shot run stopped before its end exits 128+N; a long-running agent stops on SIGTERM or SIGHUP with 0, on Ctrl-C with 130', async () => {
    const kport = unreachableAgent(`127.0.0.1:${await freePort()}`);
    const cases: Array<[string[], NodeJS.Signals, number]> = [
      [['--once'], 'SIGTERM', 143],
      [['--once'], 'SIGINT', 130],
      [['--once'], 'SIGHUP', 129],
      [[], 'SIGTERM', 0],
      [[], 'SIGHUP', 0],
      [[], 'SIGINT', 130],
    ];
    await Promise.all(
      cases.map(async ([flags, signal, code]) => {
        // Each run its own data dir: one agent per data dir.
        const dataDir = tempDir('signal-data');
        const proc = kport(['--data-dir', dataDir, 'discover', 'run', ...flags]);
        const log = collect(proc);
        await waitFor('the retrying notice', async () => /retrying/.test(log.text()), { timeoutMs: 30_000 });
        proc.kill(signal);
        const res = await proc;
        assert.equal(res.exitCode, code, `discover run ${flags.join(' ')} stopped by ${signal}: ${log.text()}`);
      }),
    );
  });

  test('a second signal cuts the clean stop short and exits 128 + its number', async () => {
    // An AWS endpoint that never answers keeps a poll in flight, so the first SIGTERM waits for it.
    const sockets = new Set<Socket>();
    const silent: Server = createServer(() => {});
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const dir = tempDir('forced');
      writeFileSync(
        join(dir, 'kport.yaml'),
        stringify({ version: 'v3', teleport: { data_dir: join(dir, 'data') }, discovery_service: { enabled: 'yes', aws: MATCHERS } }),
      );
      const env = {
        HOME: dir,
        PATH: process.env.PATH ?? '',
        KPORT_CONFIG: join(dir, 'kport.yaml'),
        AWS_ENDPOINT_URL: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'x',
        AWS_REGION: 'us-east-1',
      };
      const kport = (args: string[]) => execa(process.execPath, [KPORT_BIN, ...args], { cwd: dir, env, extendEnv: false, reject: false });
      const token = String((await kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout).trim();
      const agent = kport(['discover', 'run', '--token', token]);
      const log = collect(agent);
      await waitFor('the poll to start', async () => /poll started/.test(log.text()) && sockets.size > 0, { timeoutMs: 30_000 });
      agent.kill('SIGTERM');
      await waitFor('the stopping notice', async () => /stopping: finishing the poll in flight/.test(log.text()), { timeoutMs: 10_000 });
      agent.kill('SIGTERM');
      assert.equal((await agent).exitCode, 143, log.text());
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

/** Ctrl-C as a terminal sends it: SIGINT to every process of the foreground group (a pipeline's writer too). */
function ctrlC(proc: ResultPromise): void {
  process.kill(-proc.pid!, 'SIGINT');
}

describe('lifecycle: Ctrl-C is 130 for commands that wait on the person', { timeout: 120_000 }, () => {
  test('kube login CLUSTER (the foreground proxy) stops on Ctrl-C with 130 and removes its kubeconfig', async () => {
    const dir = tempDir('ctrl-c-kube');
    const kubeconfig = stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    });
    writeFileSync(
      join(dir, 'kport.yaml'),
      stringify({
        version: 'v3',
        teleport: { data_dir: join(dir, 'data') },
        roles: [{ name: 'dev', kubernetes_labels: { '*': '*' } }],
        users: [{ name: 'alice', roles: ['dev'] }],
      }),
    );
    writeFileSync(join(dir, 'cluster.yaml'), stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'lab' }, spec: { kubeconfig } }));
    const opts = {
      cwd: dir,
      env: { HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(dir, 'kport.yaml') },
      extendEnv: false,
      reject: false,
    } as const;
    assert.equal((await execa(process.execPath, [KPORT_BIN, 'create', '-f', join(dir, 'cluster.yaml')], opts)).exitCode, 0);
    const proc = execa(process.execPath, [KPORT_BIN, 'kube', 'login', 'lab', '--user', 'alice'], { ...opts, detached: true });
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    const log = collect(proc);
    const path = await waitFor('the export line', async () => /^export KUBECONFIG=(.+)$/m.exec(out)?.[1], { timeoutMs: 30_000 });
    ctrlC(proc);
    const res = await proc;
    assert.equal(res.exitCode, 130, log.text());
    assert.equal(existsSync(path), false, 'the kubeconfig is removed');
  });

  test("login --password-stdin waiting on a pipe stops on Ctrl-C with 130, whether the pipe's writer dies of the same Ctrl-C or keeps it open", async () => {
    const server = await startServer();
    try {
      const writers = {
        // `sleep` dies of the Ctrl-C too: its end of the pipe closes as the signal arrives, in either order.
        dies: 'sleep 20',
        // A writer that ignores Ctrl-C keeps the pipe open: only the signal can end the wait.
        'keeps the pipe open': "trap '' INT; sleep 20",
      };
      await Promise.all(
        Object.entries(writers).flatMap(([what, writer]) =>
          [1, 2, 3].map(async (n) => {
            const added = await server.kport(['users', 'add', `p-${what.length}-${n}`, '--roles', 'access']);
            assert.equal(added.exitCode, 0, String(added.stderr));
            const invite = /^ {2}invite code: (\S+)$/m.exec(String(added.stdout))![1]!;
            const home = tempDir('ctrl-c-login');
            const login = [process.execPath, KPORT_BIN, 'login', '--proxy', server.address, '--ca-pin', server.pin, '--invite', invite, '--password-stdin']
              .map((a) => `'${a}'`)
              .join(' ');
            // A subshell catches Ctrl-C itself (a trap: kport keeps the default) and says kport's exit code as soon as it exits.
            const proc = execa('sh', ['-c', `(${writer}) | (trap : INT; ${login}; echo "kport exited $?" >&2)`], {
              cwd: home,
              env: { HOME: home, PATH: process.env.PATH ?? '' },
              extendEnv: false,
              reject: false,
              detached: true,
            });
            const log = collect(proc);
            try {
              // The enrolment is printed, then the login waits for the new password and a code on stdin.
              // A login that ended before its enrolment fails here with what it said, not after a wait.
              await waitFor('the enrolment', async () => /otpauth:\/\//.test(log.text()) || /^kport exited/m.test(log.text()), { timeoutMs: 30_000 }).catch(
                (err: Error) => {
                  throw new Error(`${what}: ${err.message}; the login said:\n${log.text()}`);
                },
              );
              assert.match(log.text(), /otpauth:\/\//, `${what}: the login ended before its enrolment:\n${log.text()}`);
              ctrlC(proc);
              const code = await waitFor('kport to exit', async () => /^kport exited (\d+)$/m.exec(log.text())?.[1], { timeoutMs: 10_000 });
              assert.equal(code, '130', `${what}: ${log.text()}`);
              assert.doesNotMatch(log.text(), /read nothing/, what);
            } finally {
              // The writer that ignores Ctrl-C is still there; in the other case the group is gone.
              try {
                process.kill(-proc.pid!, 'SIGKILL');
              } catch {}
              await proc;
            }
          }),
        ),
      );
    } finally {
      await server.stop();
    }
  });
});

describe('lifecycle: status is true now; removal and stop are said', { timeout: 240_000 }, () => {
  test('a leader stopped while the server was down is not shown as leader beside the new one; agents rm removes its heartbeats and is audited; the server says it stopped', async () => {
    const server: TestServer = await startServer();
    const agents: NetworkAgent[] = [];
    const status = async () => {
      const res = await server.kport(['get', 'discovery_service', '-o', 'json']);
      assert.equal(res.exitCode, 0, String(res.stderr));
      return JSON.parse(String(res.stdout)) as Array<{ spec: { host_id: string; state: string } }>;
    };
    try {
      const a = await networkAgent(NO_AWS, server, { name: 'a', group: 'g', matchers: MATCHERS });
      agents.push(a);
      a.start();
      await waitFor('a to lead', async () => /leading discovery group g/.test(a.log), { timeoutMs: 60_000 });
      await waitFor('a shown as leader', async () => (await status()).find((s) => s.spec.host_id === a.hostId())?.spec.state === 'leader', {
        timeoutMs: 30_000,
      });

      // The server goes down; the leader is stopped meanwhile and cannot say so.
      const serverProc = server.proc!;
      await server.stop('SIGTERM');
      assert.equal((await serverProc).exitCode, 0, 'SIGTERM stops the server cleanly: exit 0');
      assert.match(server.log, new RegExp(`^kport server stopped \\(SIGTERM\\); it no longer listens on https://127\\.0\\.0\\.1:${server.port}\\.$`, 'm'));
      a.proc!.kill('SIGTERM');
      assert.equal((await a.proc!).exitCode, 0, a.log);
      await server.start();

      const b = await networkAgent(NO_AWS, server, { name: 'b', group: 'g', matchers: MATCHERS });
      agents.push(b);
      b.start();
      await waitFor('b to lead', async () => /leading discovery group g/.test(b.log), { timeoutMs: 60_000 });
      const states = Object.fromEntries((await status()).map((s) => [s.spec.host_id, s.spec.state]));
      assert.equal(states[b.hostId()], 'leader');
      assert.notEqual(states[a.hostId()], 'leader', `the stopped agent is not shown leading: ${JSON.stringify(states)}`);
      const table = String((await server.kport(['get', 'discovery_service'])).stdout);
      assert.equal(table.match(/\tleader\t/g)?.length, 1, table);

      // agents rm: its heartbeat goes at once, and the removal is an audit event.
      const rm = await server.kport(['agents', 'rm', b.hostId()]);
      assert.equal(rm.exitCode, 0, String(rm.stderr));
      assert.ok(!(await status()).some((s) => s.spec.host_id === b.hostId()), 'a removed agent is not listed');
      const removed = (await auditEvents(server)).filter((e) => e.spec.type === 'agent.remove');
      assert.equal(removed.length, 1);
      assert.equal(removed[0]!.spec.host_id, b.hostId());
      assert.equal(removed[0]!.spec.outcome, 'allowed');
      assert.equal(removed[0]!.spec.action, 'agents rm');
      await waitFor('the removed agent to stop', async () => !b.alive, { timeoutMs: 30_000 });
    } finally {
      for (const agent of agents) agent.proc?.kill('SIGKILL');
      await Promise.all(agents.map((agent) => agent.proc?.catch(() => undefined)));
      await server.stop('SIGKILL');
    }
  });

  test('an agent says when it joined (then resumed) and when its Kubernetes service is ready: a line each on stderr, a JSON line each with -o json', async () => {
    const server = await startServer();
    const agents: NetworkAgent[] = [];
    try {
      const kube = { enabled: 'yes', resources: [{ labels: { env: 'nothing-yet' } }] };
      const text = await networkAgent(NO_AWS, server, { name: 'says', group: 'says', matchers: MATCHERS, kubernetes: kube });
      agents.push(text);
      text.start();
      const ready = /^Kubernetes service ready: the tunnel to 127\.0\.0\.1:\d+ is open, serving no cluster yet \(its kubernetes_service selects none\)\.$/m;
      await waitFor('the ready line', async () => ready.test(text.log), { timeoutMs: 60_000 });
      assert.match(
        text.log,
        new RegExp(
          `^Joined the kport server at 127\\.0\\.0\\.1:${server.port} as agent ${text.hostId()} \\(discovery, kube\\); its identity is in .*identity, so the token is not needed again\\.$`,
          'm',
        ),
      );
      assert.equal(text.log.match(ready)?.length, 1, 'said once');
      text.proc!.kill('SIGTERM');
      await text.proc;
      // Restarted: it resumes with its identity, and says so; with -o json, as JSON lines.
      text.log = '';
      text.start(['discover', 'run', '-o', 'json']);
      const events = () =>
        text.log
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { level: string; message: string; event?: { type: string; host_id?: string; server?: string; clusters?: string[] } });
      await waitFor('the kube_ready event', async () => events().some((e) => e.event?.type === 'kube_ready'), { timeoutMs: 60_000 });
      const resumed = events().find((e) => e.event?.type === 'resumed');
      assert.equal(resumed?.level, 'info', text.log);
      assert.equal(resumed?.event?.host_id, text.hostId());
      assert.equal(resumed?.event?.server, server.address);
      assert.deepEqual(events().find((e) => e.event?.type === 'kube_ready')?.event?.clusters, []);
    } finally {
      for (const agent of agents) agent.proc?.kill('SIGKILL');
      await Promise.all(agents.map((agent) => agent.proc?.catch(() => undefined)));
      await server.stop('SIGKILL');
    }
  });

  test('--once with a kept identity and the server gone gives up too', async () => {
    const server = await startServer();
    try {
      const agent = await networkAgent(NO_AWS, server, { name: 'kept', group: 'k', matchers: MATCHERS, timeouts: GIVE_UP });
      // The first run joins; its poll fails (no AWS), so it exits 1, but the identity is kept.
      const first = await agent.start(['discover', 'run', '--once']);
      assert.equal(first.exitCode, 1, agent.log);
      assert.ok(existsSync(join(agent.dataDir, 'identity', 'identity.json')), agent.log);
      await server.stop();
      agent.log = '';
      const second = await agent.start(['discover', 'run', '--once']);
      assert.equal(second.exitCode, 1, agent.log);
      assert.match(
        agent.log,
        new RegExp(`^ERROR: The kport server at 127\\.0\\.0\\.1:${server.port} is unreachable: connection refused .*; --once gave up after 2 s`, 'm'),
      );
    } finally {
      await server.stop('SIGKILL');
    }
  });

  test('server start without a config file says which file to create, with the keys', async () => {
    const dir = tempDir('no-config');
    const res = await execa(process.execPath, [KPORT_BIN, 'server', 'start'], {
      cwd: dir,
      env: { HOME: dir, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
    assert.equal(res.exitCode, 2);
    assert.match(
      String(res.stderr),
      /kport server start needs a config file, and none was found \(searched .* upwards and \/etc\/kport\.yaml\): create kport\.yaml with the lines "auth_service: \{ enabled: yes \}" and "proxy_service: \{ enabled: yes \}" .*then run `kport server start -c kport\.yaml`\./,
    );
  });
});

describe('lifecycle: a config found by searching never runs code', { timeout: 120_000 }, () => {
  test('kport.config.{js,mjs,cjs} above the working directory, a cosmiconfig meta config, a $import: nothing runs; -c of a non-config is an error', async () => {
    const root = tempDir('untrusted');
    const marker = join(root, 'MARKER');
    const payload = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran', { flag: 'a' }); module.exports = { version: 'v3' };\n`;
    const esm = `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(marker)}, 'ran', { flag: 'a' }); export default { version: 'v3' };\n`;
    // An untrusted checkout: code where cosmiconfig would look, and would be told to look.
    const checkout = join(root, 'checkout');
    const deep = join(checkout, 'src', 'deep');
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(checkout, 'kport.config.mjs'), esm);
    writeFileSync(join(checkout, 'kport.config.js'), esm);
    writeFileSync(join(checkout, 'kport.config.cjs'), payload);
    const meta = join(root, 'meta');
    mkdirSync(meta);
    writeFileSync(join(meta, 'package.json'), JSON.stringify({ name: 'x', cosmiconfig: { searchPlaces: ['evil.cjs'] } }));
    writeFileSync(join(meta, 'evil.cjs'), payload);
    const imports = join(root, 'imports');
    mkdirSync(imports);
    writeFileSync(join(imports, '.kportrc.json'), JSON.stringify({ $import: 'evil.mjs' }));
    writeFileSync(join(imports, 'evil.mjs'), esm);
    const home = tempDir('untrusted-home');
    const kport = (cwd: string, args: string[]) =>
      execa(process.execPath, [KPORT_BIN, ...args], { cwd, env: { HOME: home, PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false });
    for (const cwd of [checkout, deep, meta, imports]) {
      for (const args of [['version'], ['get', 'kube_cluster'], ['kube', 'ls'], ['tokens', 'ls'], ['discover', 'policy']]) {
        await kport(cwd, args);
        assert.ok(!existsSync(marker), `kport ${args.join(' ')} in ${cwd} ran code it found by searching`);
      }
    }

    // Named with -c, a file must be a config: a package.json without "kport", a script that exports none.
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'app' }));
    let res = await kport(root, ['-c', join(root, 'package.json'), 'get', 'kube_cluster']);
    assert.equal(res.exitCode, 2);
    assert.match(String(res.stderr), /package\.json has no "kport" key: put kport's configuration under "kport", or point -c at a kport\.yaml\./);
    writeFileSync(join(root, 'script.cjs'), 'void 0;\n');
    res = await kport(root, ['-c', join(root, 'script.cjs'), 'get', 'kube_cluster']);
    assert.equal(res.exitCode, 2);
    assert.match(String(res.stderr), /script\.cjs is not a kport configuration: a JavaScript config must `export default` a mapping of keys/);
    // Named explicitly, a JavaScript config is the user's opt-in, and loads.
    writeFileSync(join(root, 'own.mjs'), `export default { version: 'v3', teleport: { data_dir: ${JSON.stringify(join(root, 'data'))} } };\n`);
    res = await kport(root, ['-c', join(root, 'own.mjs'), 'get', 'kube_cluster']);
    assert.equal(res.exitCode, 0, String(res.stderr));
  });
});
