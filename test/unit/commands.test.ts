// Commands run in-process with captured output (docs/style.md 14), against a real sqlite file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { validateJoinToken } from '../../src/tokens/tokens.ts';
import { runKport, tempHome } from '../helpers/run.ts';

function fresh() {
  const home = tempHome();
  const run = (argv: string[], opts: Parameters<typeof runKport>[1] = {}) => runKport(argv, { cwd: home, ...opts });
  const dbFiles = () => readdirSync(join(home, 'data', 'kport')).map((f) => join(home, 'data', 'kport', f));
  return { home, run, dbFiles };
}

describe('tokens', () => {
  test('add --format=text prints only the secret; ls shows name, types, uses left and expiry; the store holds no secret', async () => {
    const { run, dbFiles } = fresh();
    const now = new Date('2026-11-24T12:00:00Z');
    const added = await run(['tokens', 'add', '--type=discovery,KUBE', '--format=text'], { now: () => now });
    assert.equal(added.code, 0, added.stderr);
    const secret = added.stdout.trim();
    assert.match(secret, /^[0-9a-f]{16}\.[0-9a-f]{32}$/);
    const ls = await run(['tokens', 'ls']);
    assert.equal(ls.code, 0);
    const [header, row] = ls.stdout.trim().split('\n');
    assert.equal(header, 'Name\tType\tUses Left\tLabels\tExpiry Time (UTC)');
    assert.match(row ?? '', /^tok-[0-9a-f]{16}\tDiscovery,Kube\tunlimited\t\t2026-11-24T12:30:00Z$/);
    assert.ok(!ls.stdout.includes(secret));
    for (const file of dbFiles()) {
      assert.ok(!readFileSync(file).includes(secret), `${file} holds the secret in clear`);
      assert.equal(statSync(file).mode & 0o077, 0, `${file} must be private`);
    }
  });

  test('default output explains how to use the token; json carries token, roles, expires', async () => {
    const { run } = fresh();
    const text = await run(['tokens', 'add', '--type=kube', '--ttl=1h']);
    assert.match(text.stdout, /The invite token: [0-9a-f]{16}\.[0-9a-f]{32}\nIt lets agents join with role kube\. It will expire in 60 minutes/);
    assert.match(text.stdout, /kport discover run -c kport\.yaml --token \/tmp\/token/);
    const json = JSON.parse((await run(['tokens', 'add', '--type=kube', '--format=json', '--labels=team=a'])).stdout);
    assert.deepEqual(json.roles, ['Kube'], 'a token grants exactly the roles named');
    assert.match(json.token, /^[0-9a-f]{16}\.[0-9a-f]{32}$/);
    assert.ok(Date.parse(json.expires) > Date.now());
  });

  test('bad input is a clear usage error and writes nothing', async () => {
    const { run } = fresh();
    const cases: Array<[string[], RegExp]> = [
      [['tokens', 'add'], /--type is required/],
      [['tokens', 'add', '--type=wizard'], /invalid role "wizard"/],
      [['tokens', 'add', '--type=kube,Kube'], /duplicate role "Kube"/],
      [['tokens', 'add', '--type=kube', '--ttl=soon'], /Invalid --ttl "soon"/],
      [['tokens', 'add', '--type=kube', '--labels=oops'], /--labels: invalid label "oops"/],
      [['tokens', 'add', '--type=kube', '--bogus'], /unknown option '--bogus'/],
      [['tokens', 'add', '--type=kube', '--value=short'], /--value must be 8 to 256 characters long/],
      [['tokens', 'add', '--type=kube', `--value=${'x'.repeat(257)}`], /--value must be 8 to 256 characters long/],
      [['get', 'widget'], /Unknown resource kind "widget"/],
      [['tokens', 'add', '--type=kube', '--format=xml'], /Unknown format "xml"/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    }
    assert.equal((await run(['tokens', 'ls', '--format=json'])).stdout, '[]\n');
  });

  test('a duplicate --value is refused; rm accepts the secret or the name', async () => {
    const { run } = fresh();
    assert.equal((await run(['tokens', 'add', '--type=discovery', '--value=my-secret-value'])).code, 0);
    const dup = await run(['tokens', 'add', '--type=discovery', '--value=my-secret-value']);
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /failed to create token \(tok-[0-9a-f]+ already has this value\), please use another --value/);
    const rm = await run(['tokens', 'rm', 'my-secret-value']);
    assert.match(rm.stdout, /^token "tok-[0-9a-f]{16}" has been deleted\.$/m);
    const again = await run(['tokens', 'rm', 'my-secret-value']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no token has the secret given: see `kport tokens ls`/);
  });

  test('join validation: expired tokens are refused and removed; missing roles are named', async () => {
    const { run, home } = fresh();
    const start = new Date();
    const secret = (await run(['tokens', 'add', '--type=discovery', '--ttl=1h', '--format=text'])).stdout.trim();
    const backend = await SqliteBackend.open(join(home, 'data', 'kport', 'kport.db'));
    try {
      assert.equal((await validateJoinToken(backend, secret, ['discovery'], start)).token.spec.roles[0], 'Discovery');
      await assert.rejects(validateJoinToken(backend, secret, ['discovery', 'kube'], start), /the token does not allow role kube/);
      await assert.rejects(
        validateJoinToken(backend, 'not-a-token', ['discovery'], start),
        /^UserError: token expired or not found: create one with `kport tokens add --type=discovery`\.$/,
      );
      const later = new Date(start.getTime() + 2 * 3_600_000);
      await assert.rejects(validateJoinToken(backend, secret, ['discovery'], later), /token expired or not found/);
    } finally {
      await backend.close();
    }
  });
});

describe('tokens made by an older kport', () => {
  test('a token stored under the SHA-256 name keeps joining until it expires, and rm finds it by its secret', async () => {
    const { run, home } = fresh();
    assert.equal((await run(['tokens', 'ls'])).code, 0, 'the store exists');
    const secret = '0123456789abcdef0123456789abcdef';
    const hash = createHash('sha256').update(secret).digest('hex');
    const now = new Date();
    const backend = await SqliteBackend.open(join(home, 'data', 'kport', 'kport.db'));
    try {
      // Exactly what tokens add wrote before names became random.
      const legacy = {
        kind: 'token',
        version: 'v2',
        metadata: { name: `tok-${hash.slice(0, 16)}`, expires: new Date(now.getTime() + 3_600_000).toISOString() },
        spec: { roles: ['Discovery'], hash },
      };
      assert.ok(await backend.create(`/resources/token/${legacy.metadata.name}`, JSON.stringify(legacy), { ttlMs: 3_600_000 }));
      assert.equal((await validateJoinToken(backend, secret, ['discovery'], now)).token.metadata.name, legacy.metadata.name);
      await assert.rejects(validateJoinToken(backend, `${secret}0`, ['discovery'], now), /token expired or not found/);
    } finally {
      await backend.close();
    }
    assert.match((await run(['tokens', 'rm', secret])).stdout, new RegExp(`token "tok-${hash.slice(0, 16)}" has been deleted`));
  });
});

describe('get, create, rm', () => {
  test('get kube_cluster on an empty store prints an empty table or [] and exits 0', async () => {
    const { run } = fresh();
    assert.deepEqual(await run(['get', 'kube_cluster']), { code: 0, stdout: 'Name\tSource\tLabels\n', stderr: '' });
    assert.deepEqual(await run(['get', 'kube_cluster', '--format', 'json']), { code: 0, stdout: '[]\n', stderr: '' });
    assert.deepEqual(await run(['get', 'kube_cluster', '--format', 'yaml']), { code: 0, stdout: '[]\n', stderr: '' });
  });

  test('create -f with several documents, get by full and discovered name, --force, rm', async () => {
    const { run, home } = fresh();
    const file = join(home, 'resources.yaml');
    writeFileSync(
      file,
      `kind: role
metadata: { name: dev }
spec:
  kubernetes_labels: { env: prod }
  kubernetes_groups: [developers]
---
kind: kube_cluster
version: v3
metadata:
  name: prod-eks-us-east-1-222222222222
  labels: { env: prod, kport.internal/discovered-name: prod }
spec:
  aws: { name: prod, region: us-east-1, account_id: "222222222222" }
`,
    );
    const created = await run(['create', '-f', file]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /role "dev" has been created\.\nkube_cluster "prod-eks-us-east-1-222222222222" has been created\./);
    const byShort = JSON.parse((await run(['get', 'kube_cluster/prod', '--format=json'])).stdout);
    assert.equal(byShort.metadata.name, 'prod-eks-us-east-1-222222222222');
    assert.deepEqual(byShort.spec.aws, { name: 'prod', region: 'us-east-1', account_id: '222222222222' });
    const role = JSON.parse((await run(['get', 'role/dev', '--format=json'])).stdout);
    assert.deepEqual(role, {
      kind: 'role',
      version: 'v7',
      metadata: { name: 'dev' },
      spec: { allow: { kubernetes_groups: ['developers'], kubernetes_labels: { env: 'prod' } } },
    });

    const again = await run(['create', '-f', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /role "dev" already exists: pass --force to overwrite it\. Nothing was written\./);
    assert.equal((await run(['create', '-f', file, '--force'])).code, 0);

    const rm = await run(['rm', 'kube_cluster/prod']);
    assert.equal(rm.stdout, 'kube_cluster "prod-eks-us-east-1-222222222222" has been deleted.\n');
    const missing = await run(['get', 'kube_cluster/prod']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /kube_cluster "prod" not found: see `kport get kube_cluster`/);
  });

  test('create -f validates every document before writing anything', async () => {
    const { run, home } = fresh();
    const file = join(home, 'bad.yaml');
    writeFileSync(
      file,
      'kind: role\nmetadata: { name: ok }\nspec: {}\n---\nkind: kube_cluster\nmetadata: { name: "bad name" }\nspec: {}\n---\nkind: token\nmetadata: { name: t }\nspec: {}\n',
    );
    const r = await run(['create', '-f', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /document 2: metadata\.name: names may contain only letters/);
    assert.match(r.stderr, /document 2: spec: a kube_cluster needs exactly one of spec\.aws or spec\.kubeconfig/);
    assert.match(r.stderr, /document 3: token resources are created by kport itself/);
    const roles = JSON.parse((await run(['get', 'role', '--format=json'])).stdout) as Array<{ metadata: { labels?: Record<string, string> } }>;
    assert.deepEqual(
      roles.filter((r) => r.metadata.labels?.['kport.dev/origin'] !== 'builtin'),
      [],
      'nothing written (the built-in roles are listed too)',
    );
    writeFileSync(file, 'kind: role\nmetadata: { name: [unclosed\n');
    assert.match((await run(['create', '-f', file])).stderr, /document 1: invalid YAML at line \d+/);
  });

  test('ambiguous discovered names list the candidates', async () => {
    const { run, home } = fresh();
    const file = join(home, 'two.yaml');
    const doc = (region: string) =>
      `kind: kube_cluster\nmetadata:\n  name: prod-eks-${region}-222222222222\n  labels: { kport.internal/discovered-name: prod }\nspec:\n  aws: { name: prod, region: ${region}, account_id: "222222222222" }\n`;
    writeFileSync(file, `${doc('us-east-1')}---\n${doc('eu-west-1')}`);
    assert.equal((await run(['create', '-f', file])).code, 0);
    const r = await run(['get', 'kube_cluster/prod']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /"prod" matches multiple auto-discovered Kubernetes clusters: prod-eks-eu-west-1-222222222222, prod-eks-us-east-1-222222222222\. Use the full resource name\./,
    );
  });

  test('version and help exit 0; no arguments is a usage error', async () => {
    const { run } = fresh();
    assert.match((await run(['version'])).stdout, /^kport v\d+\.\d+\.\d+ node v\d+/);
    assert.equal((await run(['--help'])).code, 0);
    assert.equal((await run([])).code, 2);
    const unknown = await run(['tokenz']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'tokenz'[\s\S]*Did you mean tokens\?/);
  });

  test('help for a command that does not exist says "unknown command" with the nearest match (exit 2), as without --help; help of real commands is unchanged', async () => {
    const { run } = fresh();
    const unknown: Array<[string[], RegExp]> = [
      [['request', 'create', '--help'], /unknown command 'request'/],
      [['nosuch', '--help'], /unknown command 'nosuch'/],
      [['nosuch', '-h'], /unknown command 'nosuch'/],
      [['-h', 'nosuch'], /unknown command 'nosuch'/],
      [['--format', 'json', 'tokenz', '--help'], /unknown command 'tokenz'[\s\S]*Did you mean tokens\?/],
      [['users', 'nosuch', '--help'], /unknown command 'nosuch'/],
      [['users', 'lss', '--help'], /unknown command 'lss'[\s\S]*Did you mean ls\?/],
      [['kube', 'logn', 'prod', '--help'], /unknown command 'logn'[\s\S]*Did you mean login\?/],
      [['help', 'nosuch'], /unknown command 'nosuch'/],
      [['help', 'users', 'nosuch'], /unknown command 'nosuch'/],
    ];
    for (const [argv, message] of unknown) {
      const r = await run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '', argv.join(' '));
      assert.match(r.stderr, message, argv.join(' '));
    }
    const known: Array<[string[], RegExp]> = [
      [['users', '--help'], /^Usage: kport users /],
      [['users', 'ls', '--help'], /^Usage: kport users ls /],
      [['help', 'users'], /^Usage: kport users /],
      [['get', 'kube_cluster', '--help'], /^Usage: kport get /],
      [['kube', 'login', 'prod', '-h'], /^Usage: kport kube login /],
      [['-c', 'x.yaml', 'version', '--help'], /^Usage: kport version /],
    ];
    for (const [argv, usage] of known) {
      const r = await run(argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, usage, argv.join(' '));
    }
  });
});
