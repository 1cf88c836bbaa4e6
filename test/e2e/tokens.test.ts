// Join tokens through the built binary (issues 18 and 19): what a token grants, what its public
// name and the store give away, where its secret shows, and the hint after a refused join.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { tempDir, waitFor } from '../peers/process.ts';

const AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1' };

/** A home with a discovery config; `aws` is the AWS endpoint its agent polls. */
function home(opts: { kube?: boolean; aws?: string; teleport?: Record<string, unknown> } = {}) {
  const dir = tempDir('tokens');
  const config = join(dir, 'kport.yaml');
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(dir, 'data'), ...opts.teleport },
      discovery_service: { enabled: 'yes', discovery_group: 'g', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
      ...(opts.kube && { kubernetes_service: { enabled: 'yes' } }),
    }),
  );
  const env = { HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config, ...AWS_ENV, AWS_ENDPOINT_URL: opts.aws ?? 'http://127.0.0.1:1' };
  const kport = (args: string[], extra: { input?: string } = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], { cwd: dir, env, extendEnv: false, reject: false, ...extra });
  const storeFiles = () =>
    readdirSync(join(dir, 'data'))
      .filter((f) => f.startsWith('kport.db'))
      .map((f) => readFileSync(join(dir, 'data', f)));
  return { dir, kport, storeFiles };
}

describe('tokens add and tokens ls', () => {
  test('a token grants exactly the roles named, and every output of tokens add names them', async () => {
    const { kport } = home();
    const json = JSON.parse(String((await kport(['tokens', 'add', '--type=kube', '--format=json'])).stdout));
    assert.deepEqual(json.roles, ['Kube'], 'a kube token is not widened to app and discovery');
    const text = await kport(['tokens', 'add', '--type=discovery,kube']);
    assert.match(String(text.stdout), /It lets agents join with roles discovery,kube\./);
    const bare = await kport(['tokens', 'add', '--type=kube', '--format=text']);
    assert.equal(bare.exitCode, 0, String(bare.stderr));
    assert.equal(String(bare.stdout).split('\n').length, 1, 'stdout is the secret alone');
    assert.match(String(bare.stderr), /^Token tok-[0-9a-f]{16}: it lets agents join with role kube, for 30 minutes\.$/);
  });

  test('only roles kport has agents for are accepted, in one sentence with a "did you mean"', async () => {
    const { kport } = home();
    for (const [type, expected] of [
      [
        'discover',
        /^ERROR: invalid role "discover" in --type: kport has agents only for discovery and kube, so a token grants one or both of those \(did you mean "discovery"\?\)\.$/,
      ],
      ['node', /^ERROR: invalid role "node" in --type: kport has agents only for discovery and kube, so a token grants one or both of those\.$/],
      ['discovery,windowsdesktop', /invalid role "windowsdesktop"/],
    ] as const) {
      const r = await kport(['tokens', 'add', `--type=${type}`]);
      assert.equal(r.exitCode, 2, type);
      assert.match(String(r.stderr).trim(), expected);
      assert.equal(String(r.stdout), '');
    }
    assert.equal(String((await kport(['tokens', 'ls', '--format=json'])).stdout), '[]', 'nothing was written');
  });

  test('tokens ls shows no masked column, and the uses left', async () => {
    const { kport } = home();
    await kport(['tokens', 'add', '--type=discovery', '--uses=3', '--labels=team=a']);
    await kport(['tokens', 'add', '--type=kube']);
    const [header, ...rows] = String((await kport(['tokens', 'ls'])).stdout)
      .trim()
      .split('\n');
    assert.equal(header, 'Name\tType\tUses Left\tLabels\tExpiry Time (UTC)');
    assert.deepEqual(rows.map((r) => r.split('\t').slice(1, 4)).sort(), [
      ['Discovery', '3', 'team=a'],
      ['Kube', 'unlimited', ''],
    ]);
  });

  test('the public name is independent of the secret, and the store holds no unsalted hash of it', async () => {
    const { kport, storeFiles } = home();
    const weak = 'password123';
    const sha = createHash('sha256').update(weak).digest('hex');
    const added = JSON.parse(String((await kport(['tokens', 'add', '--type=discovery', `--value=${weak}`, '--format=json'])).stdout));
    assert.match(added.name, /^tok-[0-9a-f]{16}$/);
    assert.notEqual(added.name, `tok-${sha.slice(0, 16)}`, 'the name is not the SHA-256 of the secret');
    const generated = JSON.parse(String((await kport(['tokens', 'add', '--type=discovery', '--format=json'])).stdout));
    const generatedSha = createHash('sha256').update(generated.token).digest('hex');
    assert.notEqual(generated.name, `tok-${generatedSha.slice(0, 16)}`);
    assert.ok(storeFiles().length > 0, 'the store was found');
    for (const file of storeFiles()) {
      for (const needle of [weak, sha, sha.slice(0, 16), generated.token, generatedSha, Buffer.from(sha, 'hex').toString('base64url')]) {
        assert.ok(!file.includes(needle), `the store holds ${needle}`);
      }
    }
    // Both still work: a duplicate --value is refused, and rm finds each by its secret.
    const dup = await kport(['tokens', 'add', '--type=discovery', `--value=${weak}`]);
    assert.equal(dup.exitCode, 2);
    assert.match(String(dup.stderr), new RegExp(`${added.name} already has this value`));
    assert.match(String((await kport(['tokens', 'rm', weak])).stdout), new RegExp(`token "${added.name}" has been deleted`));
    assert.match(String((await kport(['tokens', 'rm', generated.token])).stdout), new RegExp(`token "${generated.name}" has been deleted`));
    const gone = await kport(['tokens', 'rm', weak]);
    assert.equal(gone.exitCode, 1);
    assert.ok(!String(gone.stderr).includes(weak), 'the error does not echo the secret');
  });
});

describe('discover run and its token', () => {
  let silent: Server;
  const sockets = new Set<import('node:net').Socket>();
  before(async () => {
    // An AWS endpoint that never answers: the agent, once joined, stays in its first poll.
    silent = createServer(() => {});
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });
  after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });

  test('a token given on the command line is hidden from ps once read, and the agent says so', async () => {
    const { kport } = home({ aws: `http://127.0.0.1:${(silent.address() as { port: number }).port}` });
    const secret = String((await kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout).trim();
    const agent = kport(['discover', 'run', '--token', secret]);
    let log = '';
    agent.stderr!.on('data', (c: Buffer) => (log += c));
    try {
      await waitFor('the agent to join and poll', async () => /poll started/.test(log), { timeoutMs: 60_000 });
      const args = String((await execa('ps', ['-o', 'args=', '-p', String(agent.pid)])).stdout);
      assert.ok(!args.includes(secret), `ps shows the secret: ${args}`);
      assert.match(args, /discover run --token \*\*\*/);
      assert.ok(!readFileSync(`/proc/${agent.pid}/cmdline`, 'latin1').includes(secret.slice(0, 8)), 'no part of it is left in the argv memory');
      assert.match(log, /the join token was given on the command line: kport hid it from the process list now, .*prefer --token FILE or --token - \(stdin\)/);
    } finally {
      agent.kill('SIGTERM');
      await agent;
    }
  });

  test('--token - reads the token from stdin', async () => {
    const { kport } = home();
    const secret = String((await kport(['tokens', 'add', '--type=discovery', '--format=text'])).stdout).trim();
    const run = await kport(['discover', 'run', '--once', '--token', '-'], { input: `${secret}\n` });
    assert.doesNotMatch(String(run.stderr), /token expired or not found/);
    const agents = JSON.parse(String((await kport(['get', 'agent', '--format=json'])).stdout));
    assert.equal(agents.length, 1, `the agent joined: ${String(run.stderr)}`);
    const empty = await kport(['discover', 'run', '--once', '--token', '-', '--data-dir', tempDir('again')], { input: '' });
    assert.equal(empty.exitCode, 2);
    assert.match(String(empty.stderr), /--token - read no token from stdin/);
  });

  test('after a refused join, the hint names the roles this agent needs (local mode)', async () => {
    for (const [kube, type] of [
      [false, 'discovery'],
      [true, 'discovery,kube'],
    ] as const) {
      const { kport } = home({ kube });
      const r = await kport(['discover', 'run', '--once', '--token', 'not-a-token-at-all']);
      assert.equal(r.exitCode, 4);
      assert.match(String(r.stderr), new RegExp(`token expired or not found: create one with \`kport tokens add --type=${type}\`\\.`));
    }
  });

  describe('network mode', () => {
    let server: TestServer;
    before(async () => {
      server = await startServer();
    });
    after(() => server?.stop());

    test('a token file holding what tokens add prints without --format=text (its paragraph, json, yaml, or any text of several lines) says to use --format=text, before anything is sent; locally too', async () => {
      // A port that counts connections: the agent must not contact the server with such a file.
      let contacted = 0;
      const counter = createServer(() => {});
      counter.on('connection', (s) => {
        contacted++;
        s.destroy();
      });
      await new Promise<void>((r) => counter.listen(0, '127.0.0.1', r));
      try {
        const outputs: Record<string, string> = {};
        for (const format of ['', '--format=json', '--format=yaml']) {
          const res = await server.kport(['tokens', 'add', '--type=discovery', ...(format ? [format] : [])]);
          assert.equal(res.exitCode, 0, String(res.stderr));
          outputs[format || 'the default text'] = String(res.stdout);
        }
        outputs['two tokens'] = `${await server.token('discovery')}\n${await server.token('discovery')}\n`;
        const said: Record<string, RegExp> = {
          'the default text': /holds the text `kport tokens add` prints for people, not the token alone/,
          '--format=json': /holds the JSON that `kport tokens add --format json` prints, not the token alone/,
          '--format=yaml': /holds the YAML that `kport tokens add --format yaml` prints, not the token alone/,
          'two tokens': /holds 2 lines, where a token is one/,
        };
        for (const [what, text] of Object.entries(outputs)) {
          for (const teleport of [{ proxy_server: `127.0.0.1:${(counter.address() as { port: number }).port}` }, {}]) {
            const { dir, kport } = home({ teleport });
            writeFileSync(join(dir, 'token'), text, { mode: 0o600 });
            for (const args of [
              ['--token', join(dir, 'token')],
              ['--token', '-'],
            ]) {
              const r = await kport(['discover', 'run', '--once', ...args], args[1] === '-' ? { input: text } : {});
              const where = `${what}, ${teleport.proxy_server ? 'network' : 'local'}, ${args.join(' ')}`;
              assert.equal(r.exitCode, 2, `${where}: ${r.stderr}`);
              assert.match(String(r.stderr), said[what]!, where);
              assert.match(String(r.stderr), /: write only the token, with `\(umask 077; kport tokens add --type=discovery --format=text > .+\)`\.$/m, where);
              assert.doesNotMatch(String(r.stderr), /token expired or not found/, where);
            }
          }
        }
        assert.equal(contacted, 0, 'nothing was sent');
      } finally {
        counter.close();
      }
    });

    test('after a refused join, the hint names the roles this agent needs', async () => {
      const kubeOnly = await server.token('kube');
      for (const [kube, token, type] of [
        [false, 'not-a-token-at-all', 'discovery'],
        [false, kubeOnly, 'discovery'],
        [true, 'not-a-token-at-all', 'discovery,kube'],
      ] as const) {
        const { kport } = home({ kube, teleport: { proxy_server: server.address, ca_pin: server.pin } });
        const r = await kport(['discover', 'run', '--once', '--token', token]);
        assert.equal(r.exitCode, 4, String(r.stderr));
        assert.match(
          String(r.stderr),
          new RegExp(`The server refused to let this agent join: .*; create one with \`kport tokens add --type=${type}\` on the server\\.`),
        );
      }
    });
  });
});
