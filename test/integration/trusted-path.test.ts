// The way to what kport trusts (an outside tester's finding, on a machine with
// fs.protected_symlinks=0): a symlink another user made on the path to the data dir or KPORT_HOME
// was followed, and followed again on every access, so swapping it made a server write its
// recordings into the attacker's directory. Each path is now walked once, as OpenSSH's
// secure_filename walks one: links and directories the user's or root's, none before the last
// writable by others unless sticky; then the real path is used. The shared directory stands for
// /tmp/attack-f/pub (mode 1777); the other user is nobody (test/helpers/other-user.ts).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/cli.ts';
import { otherUser, type OtherUser } from '../helpers/other-user.ts';
import { freePort, tempDir } from '../peers/process.ts';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function needOther(t: TestContext): Promise<OtherUser | undefined> {
  const other = await otherUser();
  if (typeof other === 'string') return void t.skip(other);
  return other;
}

/** A directory every user may make entries in, sticky as /tmp is: where the attacker plants. */
function shared(): string {
  const dir = tempDir('attack-pub');
  chmodSync(dir, 0o1777);
  return dir;
}

/** A victim's server config, and kport run with it (a refusal comes at once; a server that starts is stopped at 20 s). */
async function victim() {
  const dir = tempDir('victim');
  const config = join(dir, 'srv.yaml');
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(dir, 'data') },
      auth_service: { enabled: 'yes' },
      proxy_service: { enabled: 'yes', listen_addr: `127.0.0.1:${await freePort()}` },
    }),
  );
  const kport = (args: string[], env: Record<string, string> = {}) =>
    execa(process.execPath, [KPORT_BIN, ...args], {
      cwd: dir,
      env: { HOME: dir, PATH: process.env.PATH ?? '', ...env },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 20_000,
    });
  return { dir, config, kport };
}

const owned = (path: string, uid: number) =>
  new RegExp(
    `${escapeRegExp(path)}[^\\n]* belongs to uid ${uid}\\b[^\\n]*, not to you \\(uid \\d+[^\\n]*: another local user may have put it there, so kport will not use it`,
  );

describe('the way to the data dir, KPORT_HOME and the files kport writes', { timeout: 180_000 }, () => {
  test("a data dir through another user's symlink, or under their directory, is refused by server start, a local command and an agent, naming it and the owner; nothing is made through it", async (t) => {
    const other = await needOther(t);
    if (!other) return;
    const pub = shared();
    const theirs = join(pub, 'victimdata3');
    mkdirSync(theirs, { mode: 0o700 });
    const link = join(pub, 'link3');
    symlinkSync(theirs, link);
    await other.plant(link);
    const evil = join(pub, 'evil');
    mkdirSync(evil);
    chmodSync(evil, 0o777);
    await other.plant(evil);
    const { config, kport } = await victim();
    const agent = join(pub, 'agent.yaml');
    writeFileSync(
      agent,
      stringify({
        version: 'v3',
        teleport: { proxy_server: '127.0.0.1:1', join_params: { token_name: 'x', method: 'token' } },
        discovery_service: { enabled: 'yes', aws: [{ types: ['eks'], regions: ['us-east-1'], tags: { '*': '*' } }] },
      }),
    );
    for (const [dataDir, offender, named] of [
      [link, link, `The symbolic link ${link}`],
      [join(link, 'data'), link, `The symbolic link ${link} on the way to the data dir ${join(link, 'data')}`],
      [join(evil, 'data'), evil, `The directory ${evil} on the way to the data dir ${join(evil, 'data')}`],
    ] as const) {
      for (const args of [
        ['server', 'start', '-c', config],
        ['get', 'role', '-c', config],
        ['discover', 'run', '-c', agent],
      ]) {
        const res = await kport([...args, '--data-dir', dataDir]);
        assert.equal(res.exitCode, 1, `${args.join(' ')} --data-dir ${dataDir}: ${String(res.stderr)}`);
        assert.match(String(res.stderr), owned(offender, other.uid));
        assert.match(String(res.stderr), new RegExp(`${escapeRegExp(named)} belongs to uid ${other.uid}`));
      }
    }
    assert.deepEqual(readdirSync(theirs), [], 'nothing made through the link');
    assert.deepEqual(readdirSync(evil), [], 'nothing made in their directory');
  });

  test("a data dir under a directory of the user's that others can write (not sticky) is refused naming its mode; one through the user's own link in a sticky directory is used at its real path (runs everywhere)", async () => {
    const { dir, config, kport } = await victim();
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    let res = await kport(['get', 'role', '-c', config, '--data-dir', join(open, 'data')]);
    assert.equal(res.exitCode, 1, String(res.stderr));
    assert.match(
      String(res.stderr),
      new RegExp(
        `The directory ${escapeRegExp(open)} on the way to the data dir ${escapeRegExp(join(open, 'data'))} is writable by other users \\(mode 0777\\), who could put their own files or links there in place of kport's: run chmod go-w ${escapeRegExp(open)} \\(or chmod \\+t, as /tmp is\\), or choose a path outside it, then run the command again\\.`,
      ),
    );
    assert.equal(existsSync(join(open, 'data')), false, 'nothing made there');

    const pub = shared();
    const mine = join(dir, 'mine');
    mkdirSync(mine, { mode: 0o700 });
    symlinkSync(mine, join(pub, 'mylink'));
    res = await kport(['get', 'role', '-c', config, '--data-dir', join(pub, 'mylink', 'data')]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.ok(existsSync(join(mine, 'data', 'kport.db')), 'the store is in the directory the link names');
  });

  test("a KPORT_HOME that is another user's symlink, or under their directory, is refused (exit 4) naming it and the owner; login writes nothing through it", async (t) => {
    const other = await needOther(t);
    if (!other) return;
    const pub = shared();
    const { dir, kport } = await victim();
    const home = join(dir, 'victimhome');
    mkdirSync(home, { mode: 0o700 });
    const link = join(pub, 'klink');
    symlinkSync(home, link);
    await other.plant(link);
    const evil = join(pub, 'evil');
    mkdirSync(evil);
    chmodSync(evil, 0o777);
    await other.plant(evil);
    for (const [kportHome, offender] of [
      [link, link],
      [join(evil, '.kport'), evil],
    ] as const) {
      for (const args of [['status'], ['kube', 'ls'], ['login', '--proxy', '127.0.0.1:1', '--user', 'bob', '--password-stdin']]) {
        const res = await kport(args, { KPORT_HOME: kportHome });
        assert.equal(res.exitCode, 4, `${args.join(' ')} with KPORT_HOME=${kportHome}: ${String(res.stderr)}`);
        assert.match(String(res.stderr), owned(offender, other.uid));
      }
    }
    assert.deepEqual(readdirSync(home), [], 'nothing written through the link');
    assert.deepEqual(readdirSync(evil), [], 'nothing written in their directory');
  });
});
