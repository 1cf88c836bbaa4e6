// Bad input and a hostile machine (issue 10): each is one sentence naming the path or port and the
// cause, with the documented exit code, and changes nothing. The built binary, as a user runs it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { tempHome } from '../helpers/run.ts';

function kport(home: string, config?: string) {
  return (args: string[], opts: { input?: string } = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], {
      cwd: home,
      env: { HOME: home, XDG_DATA_HOME: join(home, 'data'), KPORT_CONFIG: config ?? '' },
      extendEnv: false,
      reject: false,
      ...opts,
    });
}

const oneLine = (text: string) => assert.equal(text.trim().split('\n').length, 1, text);

describe('resources that would break later are refused at the door', () => {
  const staticKubeconfig = stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443' } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
  const cluster = (name: string, extra: Record<string, unknown> = {}) =>
    stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name, ...extra }, spec: { kubeconfig: staticKubeconfig } });

  test('kube_cluster names, labels and kubeconfigs: exit 2, nothing written', async () => {
    const home = tempHome();
    const run = kport(home);
    const cases: Array<[string, string, RegExp]> = [
      ['.', cluster('.'), /metadata\.name: names must start with a letter or a digit/],
      ['..', cluster('..'), /names must start with a letter or a digit/],
      ['-rf', cluster('-rf'), /names must start with a letter or a digit/],
      ['5,000 characters', cluster('a'.repeat(5000)), /names are at most 253 characters \(this one has 5000\)/],
      ['a slash', cluster('a/b'), /may contain only letters, digits/],
      ['a 10 MB label', cluster('big', { labels: { env: 'x'.repeat(10 * 1024 * 1024) } }), /larger than 4 MiB/],
      ['a 1 KB label', cluster('long', { labels: { env: 'x'.repeat(1000) } }), /label env has a value of 1000 characters; at most 256/],
      ['a newline in a label', cluster('nl', { labels: { env: 'a\nb' } }), /label env has a control character/],
      ['a long label key', cluster('key', { labels: { [`${'k'.repeat(64)}`]: 'v' } }), /needs a name part of 1 to 63 characters/],
      [
        'a kubeconfig that does not parse',
        stringify({ kind: 'kube_cluster', metadata: { name: 'broken' }, spec: { kubeconfig: 'clusters: [unclosed' } }),
        /spec\.kubeconfig: its kubeconfig does not parse/,
      ],
      [
        'a kubeconfig without a server',
        stringify({
          kind: 'kube_cluster',
          metadata: { name: 'noserver' },
          spec: { kubeconfig: 'contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n' },
        }),
        /its kubeconfig has no server for context "x"/,
      ],
      [
        'a kubeconfig with an exec plugin',
        stringify({ kind: 'kube_cluster', metadata: { name: 'exec' }, spec: { kubeconfig: staticKubeconfig.replace('token: t', 'exec: {command: aws}') } }),
        /exec credential plugins are not supported/,
      ],
    ];
    for (const [what, text, message] of cases) {
      writeFileSync(join(home, 'r.yaml'), text);
      const r = await run(['create', '-f', join(home, 'r.yaml')]);
      assert.equal(r.exitCode, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
    }
    assert.equal((await run(['get', 'kube_cluster', '--format=json'])).stdout, '[]', 'nothing was written');
  });

  test('create --force over a discovered cluster needs --replace-discovered', async () => {
    const home = tempHome();
    const run = kport(home);
    // A discovered cluster, as the discovery engine writes it.
    const { SqliteBackend } = await import('../../src/backend/sqlite.ts');
    const { upsertResource } = await import('../../src/resources/store.ts');
    const backend = await SqliteBackend.open(join(home, 'data', 'kport', 'kport.db'));
    await upsertResource(backend, {
      kind: 'kube_cluster',
      version: 'v3',
      metadata: { name: 'prod', labels: { 'kport.dev/origin': 'cloud', 'kport.internal/discovery-group-name': 'g' } },
      spec: { aws: { name: 'prod', region: 'us-east-1', account_id: '123456789012' } },
    });
    await backend.close();
    writeFileSync(join(home, 'r.yaml'), cluster('prod'));
    const refused = await run(['create', '-f', join(home, 'r.yaml'), '--force']);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /kube_cluster "prod" was discovered from AWS: overwriting it would make it static.*--replace-discovered/);
    assert.ok(
      JSON.parse((await run(['get', 'kube_cluster/prod', '--format=json'])).stdout).spec?.aws ??
        JSON.parse((await run(['get', 'kube_cluster/prod', '--format=json'])).stdout)[0].spec.aws,
    );
    const replaced = await run(['create', '-f', join(home, 'r.yaml'), '--force', '--replace-discovered']);
    assert.equal(replaced.exitCode, 0, replaced.stderr);
  });

  test('token labels and --ttl are checked', async () => {
    const home = tempHome();
    const run = kport(home);
    const nl = await run(['tokens', 'add', '--type=discovery', '--labels', 'team=a\nb']);
    assert.equal(nl.exitCode, 2);
    assert.match(nl.stderr, /--labels: label team has a control character/);
    const long = await run(['tokens', 'add', '--type=discovery', '--ttl', '1000h']);
    assert.equal(long.exitCode, 2);
    assert.match(long.stderr, /--ttl 1000h is longer than the 30 days a join token may live/);
    assert.equal((await run(['tokens', 'ls', '--format=json'])).stdout, '[]');
  });
});

describe('config files that are not configs', () => {
  test('a binary file, a 10 MB file and a YAML alias bomb: one sentence each, exit 2, at once', async () => {
    const home = tempHome();
    const binary = join(home, 'binary.yaml');
    writeFileSync(binary, Buffer.concat([Buffer.from('version: v3\n'), Buffer.alloc(3 * 1024 * 1024, 0), Buffer.from([0xff, 0xfe, 0x00, 0x41])]));
    const huge = join(home, 'huge.yaml');
    writeFileSync(huge, `roles:\n${'  - name: r\n'.repeat(1_000_000)}`);
    const bomb = join(home, 'bomb.yaml');
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    writeFileSync(bomb, `${levels.join('\n')}\n`);
    const cases: Array<[string, RegExp]> = [
      [binary, /binary\.yaml is 3\.0 MiB; a kport config is at most 1 MiB/],
      [huge, /huge\.yaml is \d+\.\d MiB; a kport config is at most 1 MiB/],
      [bomb, /bomb\.yaml expands YAML aliases too many times/],
    ];
    for (const [file, message] of cases) {
      const started = Date.now();
      const r = await kport(home, file)(['get', 'kube_cluster']);
      assert.equal(r.exitCode, 2, r.stderr);
      oneLine(r.stderr);
      assert.match(r.stderr, message);
      assert.ok(Date.now() - started < 5000, `${file} answered in ${Date.now() - started} ms`);
    }
    const small = join(home, 'small-binary.yaml');
    writeFileSync(small, Buffer.from([0x76, 0x3a, 0x00, 0x01, 0x02]));
    const r = await kport(home, small)(['get', 'kube_cluster']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /small-binary\.yaml is not a text file/);
  });
});

/** Runs a shell script as root of a new user and mount namespace, so tests can mount without privileges. */
function namespaced(script: string): { stdout: string; code: number } {
  try {
    return {
      stdout: execFileSync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
      code: 0,
    };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; status?: number };
    return { stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`, code: e.status ?? 1 };
  }
}

describe('a read-only or full data dir', () => {
  const usable = namespaced('true').code === 0;
  const node = process.execPath;
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

  test('read-only: get and kube ls read the store; a write is one sentence naming the store and the cause', {
    skip: !usable && !process.env.CI && 'needs unshare --user --mount',
  }, async () => {
    const home = tempHome();
    const data = join(home, 'data');
    const run = kport(home);
    assert.equal((await run(['tokens', 'add', '--type=discovery', '--format=text'])).exitCode, 0);
    const env = `HOME=${q(home)} XDG_DATA_HOME=${q(data)} KPORT_CONFIG=`;
    const kp = (args: string) => `env ${env} ${q(node)} ${q(KPORT_BIN)} ${args}`;
    const out = namespaced(`
      mount --bind ${q(data)} ${q(data)} && mount -o remount,bind,ro ${q(data)} || exit 3
      ${kp('get token --format=json')} > ${q(join(home, 'get.out'))} 2>&1; echo "get=$?" >> ${q(join(home, 'codes'))}
      ${kp('kube ls --format=json')} > ${q(join(home, 'ls.out'))} 2>&1; echo "ls=$?" >> ${q(join(home, 'codes'))}
      ${kp('tokens add --type=discovery')} > ${q(join(home, 'add.out'))} 2>&1; echo "add=$?" >> ${q(join(home, 'codes'))}
      ${kp(`--data-dir ${q(join(data, 'fresh'))} get kube_cluster`)} > ${q(join(home, 'mkdir.out'))} 2>&1; echo "mkdir=$?" >> ${q(join(home, 'codes'))}
    `);
    assert.equal(out.code, 0, out.stdout);
    const codes = readFileSync(join(home, 'codes'), 'utf8');
    assert.match(codes, /get=0/);
    assert.equal(JSON.parse(readFileSync(join(home, 'get.out'), 'utf8')).length, 1, 'the token is read from the read-only store');
    assert.match(codes, /ls=0/);
    assert.match(codes, /add=1/);
    const add = readFileSync(join(home, 'add.out'), 'utf8');
    oneLine(add);
    assert.match(add, /Cannot write the store .*kport\.db: read-only file system \(EROFS\); use a data dir on a writable file system/);
    assert.doesNotMatch(add, /bug/);
    assert.match(codes, /mkdir=1/);
    const mkdir = readFileSync(join(home, 'mkdir.out'), 'utf8');
    oneLine(mkdir);
    assert.match(mkdir, /Cannot open the store .*fresh\/kport\.db: read-only file system \(EROFS\); use a data dir on a writable file system/);
  });

  test('full: a write that fills the disk reports SQLITE_FULL, not the ROLLBACK after it', {
    skip: !usable && !process.env.CI && 'needs unshare --user --mount',
  }, async () => {
    const home = tempHome();
    const data = join(home, 'data');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    const env = `HOME=${q(home)} XDG_DATA_HOME=${q(data)} KPORT_CONFIG=`;
    const kp = (args: string) => `env ${env} ${q(node)} ${q(KPORT_BIN)} ${args}`;
    const out = namespaced(`
      mount -t tmpfs -o size=512k,mode=0700 tmpfs ${q(data)} || exit 3
      ${kp('tokens add --type=discovery --format=text')} > /dev/null
      dd if=/dev/zero of=${q(join(data, 'filler'))} bs=4k 2>/dev/null
      ${kp('tokens add --type=discovery')} > ${q(join(home, 'full.out'))} 2>&1 || echo "full=$?" >> ${q(join(home, 'codes'))}
      ${kp('get token --format=json')} > ${q(join(home, 'get.out'))} 2>&1; echo "get=$?" >> ${q(join(home, 'codes'))}
    `);
    assert.equal(out.code, 0, out.stdout);
    const codes = readFileSync(join(home, 'codes'), 'utf8');
    const full = readFileSync(join(home, 'full.out'), 'utf8');
    assert.match(codes, /full=1/, full);
    oneLine(full);
    assert.match(full, /Cannot (write|open) the store .*: the disk is full/);
    assert.doesNotMatch(full, /bug|cannot rollback/i);
    assert.match(codes, /get=0/);
    assert.equal(JSON.parse(readFileSync(join(home, 'get.out'), 'utf8')).length, 1, 'the first token survives');
  });

  test('full mid-run: a store already open whose disk fills reports SQLITE_FULL and keeps what it had', {
    skip: !usable && !process.env.CI && 'needs unshare --user --mount',
  }, async () => {
    const home = tempHome();
    const data = join(home, 'data');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    const sqlite = new URL('../../src/backend/sqlite.ts', import.meta.url).href;
    const script = join(home, 'fill.mjs');
    writeFileSync(
      script,
      `import { execFileSync } from 'node:child_process';
       const { SqliteBackend } = await import(${JSON.stringify(sqlite)});
       const store = await SqliteBackend.open(${JSON.stringify(join(data, 'kport.db'))});
       await store.put('/kept', 'before');
       try { execFileSync('dd', ['if=/dev/zero', 'of=${join(data, 'filler')}', 'bs=4k'], { stdio: 'ignore' }); } catch {}
       let message = 'no error';
       try { for (let i = 0; i < 50; i++) await store.put('/big/' + i, 'x'.repeat(64 * 1024)); } catch (err) { message = err.message; }
       console.log(JSON.stringify({ message, kept: (await store.get('/kept'))?.value }));`,
    );
    const out = namespaced(`mount -t tmpfs -o size=1m,mode=0700 tmpfs ${q(data)} || exit 3
${q(node)} ${q(script)}`);
    assert.equal(out.code, 0, out.stdout);
    const result = JSON.parse(out.stdout.trim().split('\n').at(-1)!);
    assert.match(result.message, /Cannot write the store .*kport\.db: the disk is full/);
    assert.doesNotMatch(result.message, /rollback/i);
    assert.equal(result.kept, 'before');
  });
});
