// `kport kube config` writes a kubeconfig that may sit in a directory others can write (KUBECONFIG
// names any file): an outside tester planted a symlink at the temporary name it wrote through
// (`<kubeconfig>.<pid>.tmp`, no O_EXCL) and had kport overwrite a file of their choosing. Every
// atomic write now goes through one helper: a random O_EXCL name beside the target. A linked
// kubeconfig is written through as kubectl does, but only when the link is the user's or root's.
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/cli.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { otherUser } from '../helpers/other-user.ts';
import { tempDir } from '../peers/process.ts';

const MINE = stringify({
  apiVersion: 'v1',
  kind: 'Config',
  clusters: [{ name: 'mine', cluster: { server: 'https://10.0.0.1' } }],
  users: [{ name: 'mine', user: { token: 't' } }],
  contexts: [{ name: 'mine', context: { cluster: 'mine', user: 'mine' } }],
  'current-context': 'mine',
});
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('kube config: where the kubeconfig is written', { timeout: 180_000 }, () => {
  let server: TestServer;
  let alice: Person;
  before(async () => {
    server = await startServer();
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
          metadata: { name: 'dev-a', labels: { env: 'dev' } },
          spec: { aws: { name: 'dev-a', region: 'us-east-1', account_id: '222222222222' } },
        }),
      ].join('---\n'),
    );
    assert.equal((await server.kport(['create', '-f', setup])).exitCode, 0);
    alice = await invitedPerson(server, 'alice', ['dev-access']);
  });
  after(async () => server?.stop());

  const kubeConfig = (kubeconfig: string) =>
    execa(process.execPath, [KPORT_BIN, 'kube', 'config', 'dev-a'], {
      cwd: alice.home,
      env: { HOME: alice.home, PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });
  const contexts = (file: string) => (parse(readFileSync(file, 'utf8')).contexts as Array<{ name: string }>).map((c) => c.name);

  test("a symlink another user planted at the name of kport's temporary file in a shared directory receives nothing", async () => {
    const shared = tempDir('shared-kube');
    chmodSync(shared, 0o1777);
    const kubeconfig = join(shared, 'config');
    const victim = join(alice.home, 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o600 });
    // The shell's pid is kport's (exec): the planted link waits at the name a pid-named temp file would have.
    const proc = execa('sh', ['-c', 'read _ && exec "$@"', 'sh', process.execPath, KPORT_BIN, 'kube', 'config', 'dev-a'], {
      cwd: alice.home,
      env: { HOME: alice.home, PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig },
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
    });
    const planted = join(shared, `config.${proc.pid}.tmp`);
    symlinkSync(victim, planted);
    proc.stdin!.end('\n');
    const res = await proc;
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the file the link points to is untouched');
    assert.ok(lstatSync(kubeconfig).isFile(), 'the kubeconfig is a file of its own, not the planted link');
    assert.equal(statSync(kubeconfig).mode & 0o777, 0o600);
    assert.deepEqual(contexts(kubeconfig), ['127.0.0.1-dev-a']);
    assert.deepEqual(readdirSync(shared).sort(), ['config', `config.${proc.pid}.tmp`], 'no temporary file left, the planted link left alone');
  });

  test("a kubeconfig that is the user's own symlink is written through, as kubectl does: the link stays, the file it names gets the context", async () => {
    const dir = tempDir('linked-kube');
    mkdirSync(join(dir, 'dotfiles'));
    const real = join(dir, 'dotfiles', 'kubeconfig');
    writeFileSync(real, MINE, { mode: 0o600 });
    const link = join(dir, 'config');
    symlinkSync(join('dotfiles', 'kubeconfig'), link);
    const res = await kubeConfig(link);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link is kept');
    assert.deepEqual(contexts(real), ['mine', '127.0.0.1-dev-a']);
    assert.equal(statSync(real).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, 'dotfiles')), ['kubeconfig'], 'no temporary file left');
  });

  test("a kubeconfig in another user's directory, or reached through their symlink to one, is refused naming it and the owner; nothing is written there", async (t) => {
    const other = await otherUser();
    if (typeof other === 'string') return void t.skip(other);
    const pub = tempDir('attack-pub');
    chmodSync(pub, 0o1777);
    const evil = join(pub, 'evildir');
    mkdirSync(evil);
    chmodSync(evil, 0o777);
    await other.plant(evil);
    const kdir = join(pub, 'kdir');
    symlinkSync(evil, kdir);
    await other.plant(kdir);
    for (const [kubeconfig, offender, what] of [
      [join(kdir, 'config'), kdir, 'The symbolic link'],
      [join(evil, 'config'), evil, 'The directory'],
      [join(evil, 'sub', 'config'), evil, 'The directory'],
    ] as const) {
      const res = await kubeConfig(kubeconfig);
      assert.equal(res.exitCode, 1, `${kubeconfig}: ${String(res.stderr)}`);
      assert.match(
        String(res.stderr),
        new RegExp(
          `${what} ${escapeRegExp(offender)} [^\\n]*belongs to uid ${other.uid}\\b[^\\n]*: another local user may have put it there, so kport will not use it`,
        ),
      );
    }
    assert.deepEqual(readdirSync(evil), [], 'nothing written in their directory');
  });

  test("a kubeconfig in a directory of the user's that others can write (not sticky), or under one, is refused naming its mode; a sticky one is used (runs everywhere)", async () => {
    const dir = tempDir('open-kube');
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    for (const kubeconfig of [join(open, 'config'), join(open, 'sub', 'config')]) {
      const res = await kubeConfig(kubeconfig);
      assert.equal(res.exitCode, 1, `${kubeconfig}: ${String(res.stderr)}`);
      assert.match(
        String(res.stderr),
        new RegExp(
          `The directory ${escapeRegExp(open)} (on the way to the directory ${escapeRegExp(join(open, 'sub'))} )?is writable by other users \\(mode 0777\\)`,
        ),
      );
    }
    assert.deepEqual(readdirSync(open), [], 'nothing written');
    chmodSync(open, 0o1777);
    const res = await kubeConfig(join(open, 'config'));
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.deepEqual(contexts(join(open, 'config')), ['127.0.0.1-dev-a']);
  });

  test('a kubeconfig link or file of another local user is refused, naming it and the owner, and nothing is written', async (t) => {
    const other = await otherUser();
    if (typeof other === 'string') return void t.skip(other);
    const dir = tempDir('foreign-kube');
    const real = join(dir, 'kubeconfig');
    writeFileSync(real, MINE, { mode: 0o644 });
    const link = join(dir, 'config');
    symlinkSync(real, link);
    for (const planted of [link, real]) {
      const undo = await other.plant(planted);
      try {
        const res = await kubeConfig(link);
        assert.equal(res.exitCode, 1, String(res.stderr));
        assert.match(
          String(res.stderr),
          new RegExp(`${escapeRegExp(planted)}.* belongs to uid ${other.uid}\\b.*: another local user may have put it there, so kport will not use it`),
        );
        assert.equal(readFileSync(real, 'utf8'), MINE, 'nothing written');
        assert.ok(lstatSync(link).isSymbolicLink());
      } finally {
        await undo();
      }
    }
  });
});
