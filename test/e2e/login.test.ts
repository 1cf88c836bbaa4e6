// `kport login`, `status` and `logout` as the built binary runs them, without a server: what the
// arguments and stdin must be (one sentence, exit 2, nothing written), and where commands run.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createSecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { saveProfile } from '../../src/client/profile.ts';
import { createAuthority, generateKeys, issueLeaf, keyPem, certPem } from '../../src/pki/certs.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson } from '../helpers/login.ts';
import { startServer } from '../helpers/network.ts';
import { writeServerKubeconfig } from '../../src/kube/server-kubeconfig.ts';
import { freePort, havePeer, tempDir } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

function kportAt(home: string) {
  return (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], {
      cwd: home,
      env: { HOME: home, PATH: process.env.PATH ?? '', ...opts.env },
      extendEnv: false,
      reject: false,
      ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
    });
}

/** A profile as a login leaves it, signed by a throwaway CA, valid for `validForMs` (negative: already expired). */
async function fakeLogin(home: string, port: number, validForMs: number) {
  const ca = await createAuthority('test user CA', 86_400_000);
  const keys = await generateKeys();
  // issueLeaf backdates notBefore by a minute and adds it to the life: -2 min is expired a minute ago.
  const cert = await issueLeaf(ca, keys.publicKey, { commonName: 'alice', validForMs, usage: 'client' });
  return saveProfile(
    join(home, '.kport'),
    { host: '127.0.0.1', port },
    { proxy: `127.0.0.1:${port}`, user: 'alice', roles: ['access'], expires: cert.notAfter.toISOString(), ca_pin: `sha256:${'a'.repeat(64)}` },
    { ca: certPem(ca.cert), cert: certPem(cert), key: await keyPem(keys.privateKey) },
  );
}

/** Services that answer on a port but are not kport: what a mistyped --proxy or proxy_server reaches. */
async function otherServices(): Promise<{ ports: Record<string, number>; close: () => void }> {
  const ca = await createAuthority('another CA', 86_400_000);
  const keys = await generateKeys();
  const leaf = await issueLeaf(ca, keys.publicKey, { commonName: 'localhost', ips: ['127.0.0.1'], usage: 'server', validForMs: 86_400_000 });
  const self = await createAuthority('localhost', 86_400_000);
  const key = await keyPem(keys.privateKey);
  const chain = `${certPem(leaf)}${certPem(ca.cert)}`;
  const page = (_req: unknown, res: { writeHead: (s: number, h: object) => void; end: (b: string) => void }) => {
    res.writeHead(404, { 'content-type': 'text/html' });
    res.end('<html>not here</html>');
  };
  const servers: Record<string, Server | ReturnType<typeof createSecureServer>> = {
    'plain HTTP': createHttpServer(page),
    'TLS without HTTP/2': createHttpsServer({ key, cert: chain }, page),
    'a self-signed TLS service': createSecureServer({ key: await keyPem(self.keys.privateKey), cert: certPem(self.cert), allowHTTP1: true }, page),
    'an HTTP/2 service that answers HTML': createSecureServer({ key, cert: chain, allowHTTP1: true }, page),
    'an HTTP/2 service that answers other JSON': createSecureServer({ key, cert: chain }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"hello":"world"}');
    }),
  };
  const ports: Record<string, number> = {};
  for (const [what, server] of Object.entries(servers)) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports[what] = (server.address() as AddressInfo).port;
  }
  return {
    ports,
    close: () => {
      for (const s of Object.values(servers)) s.close();
    },
  };
}

describe('a port that is not a kport server', { timeout: 120_000 }, () => {
  test("login and an agent's join say so in one sentence (exit 2): plain HTTP, TLS without HTTP/2, a self-signed service, HTTP/2 answering HTML or other JSON; never an agent's or a pin's advice", async () => {
    const services = await otherServices();
    try {
      for (const [what, port] of Object.entries(services.ports)) {
        const home = tempDir('not-kport');
        const login = await kportAt(home)(['login', '--proxy', `127.0.0.1:${port}`, '--user', 'alice', '--password-stdin'], {
          input: 'secret-password\n123456\n',
        });
        const agentDir = tempDir('not-kport-agent');
        writeFileSync(join(agentDir, 'token'), 'x'.repeat(32));
        writeFileSync(
          join(agentDir, 'kport.yaml'),
          stringify({
            version: 'v3',
            teleport: {
              data_dir: join(agentDir, 'data'),
              proxy_server: `127.0.0.1:${port}`,
              join_params: { token_name: join(agentDir, 'token'), method: 'token' },
            },
            discovery_service: { enabled: 'yes', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
          }),
        );
        const join_ = await kportAt(agentDir)(['-c', join(agentDir, 'kport.yaml'), 'discover', 'run', '--once']);
        for (const [who, res] of [
          ['login', login],
          ['agent', join_],
        ] as const) {
          const stderr = String(res.stderr);
          assert.equal(res.exitCode, 2, `${who} at ${what}: ${stderr}`);
          assert.match(
            stderr,
            new RegExp(
              `^ERROR: The server at 127\\.0\\.0\\.1:${port} is not a kport server: .*; check the address and port \\(kport server start prints the one it listens on\\)\\.$`,
              'm',
            ),
            `${who} at ${what}`,
          );
          assert.doesNotMatch(stderr, /identity directory|this agent joined|rebuilt|bug in kport/, `${who} at ${what}`);
        }
        assert.equal(existsSync(join(home, '.kport', 'current-profile')), false, what);
      }
    } finally {
      services.close();
    }
  });
});

describe('kport login, status, logout (no server)', { timeout: 180_000 }, () => {
  test('no terminal and no --password-stdin: one sentence naming --password-stdin, exit 2, nothing written', async () => {
    const home = tempDir('login-args');
    const kport = kportAt(home);
    for (const extra of [[], ['--invite', 'abc']]) {
      const res = await kport(['login', '--proxy', '127.0.0.1:1', '--user', 'alice', ...extra]);
      assert.equal(res.exitCode, 2, String(res.stderr));
      assert.match(
        String(res.stderr),
        /^ERROR: kport login needs a password and a TOTP code and there is no terminal to ask for them: pass --password-stdin and pipe the (new )?password on the first line and the TOTP code.* on the second\.$/,
      );
    }
    assert.equal(existsSync(join(home, '.kport')), false);
  });

  test('--password-stdin: the password on the first line, the code on the second; nothing, one line, a bad code, or more than 16 KiB: one sentence, exit 2, nothing sent', async () => {
    const home = tempDir('login-stdin');
    const kport = kportAt(home);
    // Port 1 refuses connections: an input that passes its checks ends at the network (exit 1).
    const cases: Array<[string, RegExp]> = [
      ['', /--password-stdin read nothing: pipe the password on the first line and the TOTP code on the second, one a line\./],
      ['secret-password\n', /--password-stdin read too few lines/],
      ['secret-password\nabc\n', /The TOTP code is the 6 digits your authenticator app shows now/],
      [`${'x'.repeat(20_000)}\n123456\n`, /--password-stdin read more than 16 KiB/],
    ];
    for (const [input, message] of cases) {
      const res = await kport(['login', '--proxy', '127.0.0.1:1', '--user', 'alice', '--password-stdin'], { input });
      assert.equal(res.exitCode, 2, `${JSON.stringify(input.slice(0, 40))}: ${res.stderr}`);
      assert.match(String(res.stderr), message);
      assert.doesNotMatch(String(res.stderr), /unreachable/, 'refused before anything is sent');
    }
    // CR LF and a code typed with a space pass; then the server is what is missing.
    const res = await kport(['login', '--proxy', '127.0.0.1:1', '--user', 'alice', '--password-stdin'], { input: 'secret-password\r\n123 456\r\n' });
    assert.equal(res.exitCode, 1, String(res.stderr));
    assert.match(String(res.stderr), /The kport server at 127\.0\.0\.1:1 is unreachable: connection refused/);
    assert.equal(existsSync(join(home, '.kport')), false);
  });

  test('on a terminal (a real pty through script(1)): the password is asked with no echo, the code with echo, then the server is contacted', async () => {
    const home = tempDir('login-tty');
    const command = `${process.execPath} ${KPORT_BIN} login --proxy 127.0.0.1:1 --user alice`;
    const proc = execa('script', ['-qfec', command, '/dev/null'], {
      cwd: home,
      env: { HOME: home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
    });
    let shown = '';
    const typed = new Set<string>();
    // Typed only once the prompt is up: before that the terminal is not raw yet and would echo it.
    proc.stdout!.on('data', (c: Buffer) => {
      shown += c;
      for (const [prompt, answer] of [
        ['Password for alice at 127.0.0.1:1: ', 'secret-password\r'],
        ['TOTP code: ', '123456\r'],
      ] as const) {
        if (shown.includes(prompt) && !typed.has(prompt)) {
          typed.add(prompt);
          setTimeout(() => proc.stdin!.write(answer), 100);
        }
      }
    });
    const res = await proc;
    assert.equal(res.exitCode, 1, shown);
    assert.match(shown, /^Password for alice at 127\.0\.0\.1:1: \r\nTOTP code: 123456\r\n/);
    assert.doesNotMatch(shown, /secret-password/);
    assert.match(shown, /The kport server at 127\.0\.0\.1:1 is unreachable/);
  });

  test('bad --proxy, --ca-pin, or --auth oidc with --invite: one sentence each, exit 2', async () => {
    const kport = kportAt(tempDir('login-flags'));
    const cases: Array<[string[], RegExp]> = [
      [['login', '--password-stdin'], /kport login needs the server's address: pass --proxy HOST:PORT/],
      [['login', '--proxy', 'a:b:c', '--password-stdin'], /--proxy "a:b:c" is not host:port/],
      [['login', '--proxy', '127.0.0.1:1', '--ca-pin', 'sha256:abc', '--password-stdin'], /--ca-pin "sha256:abc" is not sha256: and 64 hex digits/],
      [['login', '--proxy', '127.0.0.1:1', '--auth', 'oidc', '--invite', 'x'], /--invite sets a local password: drop --auth oidc/],
      [['login', '--proxy', '127.0.0.1:1', '--auth', 'oidc', '--password-stdin'], /--password-stdin is for local logins/],
    ];
    for (const [args, message] of cases) {
      const res = await kport(args, { input: 'pw\n123456\n' });
      assert.equal(res.exitCode, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(String(res.stderr), message);
    }
  });

  test('status without a profile: commands run locally, and why; -o json says the same', async () => {
    const kport = kportAt(tempDir('status-none'));
    let res = await kport(['status']);
    assert.equal(res.exitCode, 0);
    assert.match(String(res.stdout), /^Commands: +run locally: no profile in .*\.kport \(kport login --proxy HOST:PORT to use a server\)$/);
    res = await kport(['status', '-o', 'json']);
    const json = JSON.parse(String(res.stdout));
    assert.equal(json.mode, 'local');
    assert.equal(json.logged_in, false);
    assert.match(json.why, /^no profile in /);
  });

  test('with a profile: status says through the server; -c or KPORT_CONFIG runs locally; logout removes key and certificate and commands run locally again', async () => {
    const home = tempDir('status-profile');
    const kport = kportAt(home);
    const port = await freePort();
    const profile = await fakeLogin(home, port, 3_600_000);
    let res = await kport(['status']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(
      String(res.stdout),
      new RegExp(
        `Proxy: +127\\.0\\.0\\.1:${port}\\nUser: +alice\\nRoles: +access\\nValid until: +\\d{4}-.*Z\\nCommands: +run through the server at 127\\.0\\.0\\.1:${port}: logged in to`,
      ),
    );
    res = await kport(['-c', join(home, 'kport.yaml'), 'status']);
    assert.match(String(res.stdout), /Commands: +run locally: -c .*kport\.yaml names a config, so its store is used/);
    res = await kport(['status'], { env: { KPORT_CONFIG: join(home, 'kport.yaml') } });
    assert.match(String(res.stdout), /Commands: +run locally: KPORT_CONFIG names a config/);
    // Through the server, an unreachable one is said, not a local store silently used.
    res = await kport(['get', 'kube_cluster']);
    assert.equal(res.exitCode, 1, String(res.stderr));
    assert.match(String(res.stderr), new RegExp(`kport server at 127\\.0\\.0\\.1:${port} is unreachable`));
    res = await kport(['logout']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(String(res.stdout), new RegExp(`^Logged out alice from 127\\.0\\.0\\.1:${port}: its key and certificate are gone`));
    assert.equal(existsSync(join(profile.dir, 'key.pem')), false);
    assert.equal(existsSync(join(profile.dir, 'cert.pem')), false);
    assert.match(readFileSync(join(profile.dir, 'profile.json'), 'utf8'), /"ca_pin"/, 'the pin stays for the next login');
    res = await kport(['status']);
    assert.match(String(res.stdout), /Valid until: +logged out\nCommands: +run locally: logged out of/);
    res = await kport(['get', 'kube_cluster', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.deepEqual(JSON.parse(String(res.stdout)), []);
    res = await kport(['logout']);
    assert.equal(res.exitCode, 0);
    assert.match(String(res.stderr), /Already logged out of/);
  });

  test('an expired login through kubectl: kubectl fails, and says the expiry once per command, not once per call it makes; kport kube credentials by hand says it every time', async (t) => {
    if (!havePeer(t, 'kubectl', [BINARIES.kubectl()])) return;
    const home = tempDir('expired-kubectl');
    const port = await freePort();
    const profile = await fakeLogin(home, port, -120_000);
    const kubeconfig = join(home, '.kube', 'config');
    writeServerKubeconfig(
      kubeconfig,
      { proxy: profile.proxy, host: '127.0.0.1', port, ca: readFileSync(join(profile.dir, 'ca.pem'), 'utf8') },
      ['dev'],
      { command: process.execPath, args: [KPORT_BIN] },
      true,
    );
    const expired = /your kport login expired: run kport login/g;
    for (const run of [1, 2]) {
      const res = await execa(BINARIES.kubectl(), ['get', 'ns'], {
        cwd: home,
        env: { HOME: home, PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig },
        extendEnv: false,
        reject: false,
        stdin: 'ignore',
      });
      assert.notEqual(res.exitCode, 0, 'kubectl fails');
      assert.equal(String(res.stderr).match(expired)?.length, 1, `kubectl command ${run}: ${res.stderr}`);
      assert.match(String(res.stderr), /exit code 4/);
    }
    for (const run of [1, 2]) {
      const res = await kportAt(home)(['kube', 'credentials', 'dev', '--proxy', profile.proxy]);
      assert.equal(res.exitCode, 4);
      assert.equal(String(res.stderr).match(expired)?.length, 1, `by hand, run ${run}: ${res.stderr}`);
    }
  });

  test('a server that is down: every person command through it retries for 2 s, then says so in one sentence (exit 1)', async () => {
    const home = tempDir('down');
    const kport = kportAt(home);
    const port = await freePort();
    await fakeLogin(home, port, 3_600_000);
    writeFileSync(
      join(home, 'role.yaml'),
      stringify({ kind: 'role', version: 'v7', metadata: { name: 'r' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } }),
    );
    const commands = [
      ['kube', 'ls'],
      ['kube', 'login', 'dev', '--', 'true'],
      ['kube', 'config', 'dev'],
      ['get', 'kube_cluster'],
      ['get', 'audit'],
      ['rm', 'role/r'],
      ['create', '-f', join(home, 'role.yaml')],
      ['tokens', 'ls'],
      ['tokens', 'add', '--type=discovery'],
      ['tokens', 'rm', 'tok-0000000000000000'],
      ['users', 'ls'],
      ['users', 'add', 'bob', '--roles', 'access'],
      ['users', 'rm', 'bob'],
      ['users', 'lock', 'bob'],
      ['users', 'unlock', 'bob'],
      ['agents', 'ls'],
      ['agents', 'rm', 'h1'],
      ['play', 'some-session'],
    ];
    await Promise.all(
      commands.map(async (args) => {
        const started = Date.now();
        const res = await kport(args);
        const took = Date.now() - started;
        const what = `${args.join(' ')}: ${res.stderr}`;
        assert.equal(res.exitCode, 1, what);
        assert.match(
          String(res.stderr),
          new RegExp(
            `^ERROR: The kport server at 127\\.0\\.0\\.1:${port} is unreachable: connection refused \\(ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); tried for 2 s: check that the server runs, then run this again\\.$`,
          ),
          what,
        );
        assert.equal(String(res.stderr).trim().split('\n').length, 1, what);
        assert.ok(took >= 2_000, `${args.join(' ')} gave up after ${took} ms, before its 2 s`);
      }),
    );
  });

  test('an expired login: every command through the server and status say "your kport login expired: run kport login" (exit 4)', async () => {
    const home = tempDir('expired');
    const kport = kportAt(home);
    const port = await freePort();
    await fakeLogin(home, port, -120_000);
    for (const args of [
      ['kube', 'ls'],
      ['get', 'kube_cluster'],
      ['tokens', 'ls'],
      ['users', 'ls'],
    ]) {
      const res = await kport(args);
      assert.equal(res.exitCode, 4, `${args.join(' ')}: ${res.stderr}`);
      assert.match(
        String(res.stderr),
        new RegExp(`^ERROR: your kport login expired: run kport login --proxy 127\\.0\\.0\\.1:${port} \\(it expired at .*\\)\\.$`),
      );
    }
    const res = await kport(['status']);
    assert.equal(res.exitCode, 4);
    assert.match(String(res.stdout), /\(expired: your kport login expired: run kport login\)/);
  });
});

describe('a server that restarts while a person runs a command', { timeout: 120_000 }, () => {
  test("a command that finds the server's port closed retries, and succeeds once the port answers again within 2 s (reads and changes alike)", async () => {
    const server = await startServer();
    // The person's address for the server: a port that passes connections through, or is closed for a while (a restart).
    const port = await freePort();
    const sockets = new Set<Socket>();
    const relay = createTcpServer((client) => {
      const upstream = connect(server.port, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    const open = () => new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    const close = () =>
      new Promise<void>((resolve) => {
        relay.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    try {
      await open();
      const alice = await invitedPerson({ ...server, address: `127.0.0.1:${port}` }, 'alice', ['editor']);
      for (const args of [
        ['kube', 'ls'],
        ['users', 'add', 'bob', '--roles', 'access'],
        ['tokens', 'ls'],
      ]) {
        await close();
        const started = Date.now();
        const run = alice.kport(args);
        await new Promise((resolve) => setTimeout(resolve, 700));
        await open();
        const res = await run;
        assert.equal(res.exitCode, 0, `${args.join(' ')}: ${res.stderr}`);
        assert.ok(Date.now() - started >= 700, `${args.join(' ')} waited for the port`);
        assert.doesNotMatch(String(res.stderr), /unreachable|ERROR/, args.join(' '));
      }
    } finally {
      await close().catch(() => undefined);
      await server.stop();
    }
  });
});
