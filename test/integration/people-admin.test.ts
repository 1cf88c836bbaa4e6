// Administering people (issue findings #4, #5, #6 and the attack issue's lock finding), with a real
// `kport server start` and the built CLI, both through the server (an editor's login) and on the
// server host (`-c server.yaml`): roles changed with users update and create -f --force, users
// reset, locks that outlive the user, the first admin's roles, built-in roles in get role, a
// system:masters role, discovery status through the server, and an audit event for every change.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import * as OTPAuth from 'otpauth';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson, person, type Person } from '../helpers/login.ts';
import { auditEvents, networkAgent, startServer, waitForNetworkLeader, type NetworkAgent, type TestServer } from '../helpers/network.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const HOST_USER = `${userInfo().username} (server host)`;
const out = (res: { stdout?: unknown }) => String(res.stdout);
const err = (res: { stderr?: unknown }) => String(res.stderr);
const inviteOf = (res: { stdout?: unknown }) => /^ {2}invite code: (\S+)$/m.exec(out(res))?.[1];

describe('people administration through the server and on its host', { concurrency: false, timeout: 400_000 }, () => {
  let server: TestServer;
  let erin: Person;
  before(async () => {
    server = await startServer();
    erin = await invitedPerson(server, 'erin', ['editor']);
  });
  after(async () => server?.stop());

  /** `kport login --user NAME` with a password and the current code of the TOTP secret in `uri`. */
  const passwordLogin = (who: Person, name: string, password: string, uri: string) =>
    execa(process.execPath, [KPORT_BIN, 'login', '--proxy', server.address, '--user', name, '--password-stdin'], {
      cwd: who.home,
      env: { HOME: who.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      input: `${password}\n${(OTPAuth.URI.parse(uri) as OTPAuth.TOTP).generate()}\n`,
    });
  const users = async (as: Person | TestServer) =>
    JSON.parse(out(await as.kport(['users', 'ls', '-o', 'json']))) as Array<{ name: string; roles: string[]; locked: unknown }>;
  const locks = async (as: Person | TestServer) => {
    const res = await as.kport(['get', 'lock', '-o', 'json']);
    assert.equal(res.exitCode, 0, err(res));
    return JSON.parse(out(res)) as Array<{ metadata: { name: string; expires?: string }; spec: { user: string; message?: string; created_by?: string } }>;
  };

  test('the first admin, from the invite server start prints, has editor and auditor: reads the audit trail and sees the built-in roles, marked', async () => {
    assert.match(server.out, /invite for user admin \(roles editor, auditor\)/);
    const invite = /^ {2}invite code: (\S+)$/m.exec(server.out)?.[1];
    assert.ok(invite, server.out);
    const admin = person();
    const login = await admin.loginWithInvite(['--proxy', server.address, '--invite', invite, '--ca-pin', server.pin], 'admin has a long password');
    assert.equal(login.exitCode, 0, login.stderr);
    let res = await admin.kport(['get', 'audit', '-o', 'json']);
    assert.equal(res.exitCode, 0, err(res));
    assert.ok(JSON.parse(out(res)).some((e: { spec: { type: string; user?: string } }) => e.spec.type === 'user.login' && e.spec.user === 'admin'));

    res = await admin.kport(['get', 'role']);
    assert.equal(res.exitCode, 0, err(res));
    for (const name of ['access', 'auditor', 'editor']) assert.match(out(res), new RegExp(`^${name} \\(built-in\\)\\t`, 'm'), out(res));
    res = await admin.kport(['get', 'role/editor', '-o', 'yaml']);
    assert.match(out(res), /kport\.dev\/origin: builtin/);
    // What get prints, create -f reads back: a built-in role is left as it is, with a note.
    const file = join(admin.home, 'roles.yaml');
    writeFileSync(file, out(res));
    const again = await server.kport(['create', '-f', file, '--force']);
    assert.equal(again.exitCode, 0, err(again));
    assert.match(err(again), /role editor is built into kport and is left as it is/);
    assert.equal(out(again), '', 'nothing written');
  });

  test('users update --add-roles, --remove-roles and --set-roles, through the server and on the host: the next call is decided by the new roles; refusals change nothing; each change is audited as who made it', async () => {
    const alice = await invitedPerson(server, 'alice', ['access']);
    let res = await alice.kport(['get', 'audit']);
    assert.equal(res.exitCode, 4, 'access does not read the audit trail');

    res = await erin.kport(['users', 'update', 'alice', '--add-roles', 'auditor']);
    assert.equal(res.exitCode, 0, err(res));
    assert.match(out(res), /^User alice now has roles access, auditor: /);
    res = await alice.kport(['get', 'audit']);
    assert.equal(res.exitCode, 0, `the same certificate, the new roles: ${err(res)}`);

    res = await server.kport(['users', 'update', 'alice', '--remove-roles', 'auditor', '-o', 'json']);
    assert.equal(res.exitCode, 0, err(res));
    assert.deepEqual(JSON.parse(out(res)), { user: 'alice', roles: ['access'] });
    assert.equal((await alice.kport(['get', 'audit'])).exitCode, 4);

    res = await erin.kport(['users', 'update', 'alice', '--set-roles', 'editor']);
    assert.equal(res.exitCode, 0, err(res));
    assert.equal((await alice.kport(['users', 'ls'])).exitCode, 0, 'alice edits now');
    assert.equal((await alice.kport(['kube', 'ls'])).exitCode, 0);

    for (const [args, why] of [
      [['--set-roles', 'ghost'], /no role named ghost/],
      [['--remove-roles', 'editor'], /would leave alice with no role/],
    ] as const) {
      res = await erin.kport(['users', 'update', 'alice', ...args]);
      assert.notEqual(res.exitCode, 0, args.join(' '));
      assert.match(err(res), why);
    }
    for (const args of [[], ['--set-roles', 'access', '--add-roles', 'auditor']]) {
      res = await erin.kport(['users', 'update', 'alice', ...args]);
      assert.equal(res.exitCode, 2, `${args.join(' ')}: ${err(res)}`);
    }
    assert.equal((await server.kport(['users', 'update', 'nobody', '--set-roles', 'access'])).exitCode, 1);
    assert.deepEqual((await users(erin)).find((u) => u.name === 'alice')?.roles, ['editor'], 'the refusals changed nothing');
    res = await alice.kport(['users', 'update', 'alice', '--set-roles', 'access']);
    assert.equal(res.exitCode, 0, 'an editor may change their own roles');
    res = await alice.kport(['users', 'update', 'erin', '--set-roles', 'access']);
    assert.equal(res.exitCode, 4, 'and is no editor from the next call on');
    assert.match(err(res), /may not update user resources/);

    const events = (await auditEvents(server)).filter((e) => e.spec.type === 'user.update') as Array<{
      spec: { user?: string; action?: string; remote_addr?: string };
    }>;
    assert.ok(
      events.some((e) => e.spec.user === 'erin' && e.spec.action === 'users update alice --set-roles access,auditor (was access)'),
      JSON.stringify(events),
    );
    assert.ok(
      events.some(
        (e) => e.spec.user === HOST_USER && e.spec.remote_addr === 'local' && e.spec.action === 'users update alice --set-roles access (was access,auditor)',
      ),
      JSON.stringify(events),
    );
  });

  test('create -f user --force changes the roles and keeps the login, on the host and through the server; a new user through the server is sent to users add', async () => {
    const bob = await invitedPerson(server, 'bob', ['access']);
    const file = join(server.dir, 'bob.yaml');
    writeFileSync(file, stringify({ kind: 'user', version: 'v2', metadata: { name: 'bob' }, spec: { roles: ['access', 'auditor'] } }));
    let res = await server.kport(['create', '-f', file, '--force']);
    assert.equal(res.exitCode, 0, err(res));
    res = await bob.kport(['get', 'audit']);
    assert.equal(res.exitCode, 0, `bob keeps his login and gains auditor: ${err(res)}`);

    const mine = join(erin.home, 'bob.yaml');
    writeFileSync(mine, stringify({ kind: 'user', version: 'v2', metadata: { name: 'bob' }, spec: { roles: ['access'] } }));
    res = await erin.kport(['create', '-f', mine]);
    assert.equal(res.exitCode, 1);
    assert.match(err(res), /user "bob" already exists: pass --force/);
    res = await erin.kport(['create', '-f', mine, '--force']);
    assert.equal(res.exitCode, 0, err(res));
    res = await bob.kport(['get', 'audit']);
    assert.equal(res.exitCode, 4, 'auditor taken away at the next call');
    assert.doesNotMatch(err(res), /no longer exists/);
    assert.equal((await bob.kport(['kube', 'ls'])).exitCode, 0);

    writeFileSync(mine, stringify({ kind: 'user', version: 'v2', metadata: { name: 'newcomer' }, spec: { roles: ['access'] } }));
    res = await erin.kport(['create', '-f', mine]);
    assert.equal(res.exitCode, 1);
    assert.match(
      err(res),
      /user "newcomer" does not exist: add people with kport users add newcomer --roles access, which makes their one-time invite\. Nothing was written\./,
    );
  });

  test('on the server host, create -f makes no user, in another case of a name or a new one, with or without --force: people come only from users add', async () => {
    assert.equal((await server.kport(['users', 'add', 'ivy', '--roles', 'access'])).exitCode, 0);
    const file = join(server.dir, 'ivy.yaml');
    for (const name of ['Ivy', 'IVY', 'newcomer2']) {
      writeFileSync(file, `kind: user\nversion: v2\nmetadata: { name: ${name} }\nspec: { roles: [editor] }\n`);
      for (const force of [[], ['--force']]) {
        const res = await server.kport(['create', '-f', file, ...force]);
        assert.equal(res.exitCode, 1, `${name} ${force}: ${out(res)}`);
        assert.match(
          err(res),
          new RegExp(
            `user "${name}" does not exist: add people with kport users add ${name} --roles editor, which makes their one-time invite\\. Nothing was written\\.`,
          ),
        );
      }
      const reset = await server.kport(['users', 'reset', name]);
      assert.equal(reset.exitCode, 1, `no ${name} to reset: ${out(reset)}`);
    }
    assert.deepEqual(
      (await users(server)).filter((u) => u.name.toLowerCase().startsWith('ivy') || u.name === 'newcomer2').map((u) => [u.name, u.roles]),
      [['ivy', ['access']]],
    );
  });

  test("rm user/NAME, on the host and through the server, takes the person's password, authenticator and invites with the record: a user added again under the name is not the old one", async () => {
    const gus = await invitedPerson(server, 'gus', ['access']);
    let res = await server.kport(['users', 'add', 'fay', '--roles', 'access']);
    const oldInvite = inviteOf(res);
    assert.ok(oldInvite, out(res));
    for (const name of ['gus', 'fay']) {
      res = await server.kport(['rm', `user/${name}`]);
      assert.equal(res.exitCode, 0, err(res));
      assert.equal(out(res), `user "${name}" has been deleted.`);
      res = await server.kport(['users', 'add', name, '--roles', 'editor']);
      assert.equal(res.exitCode, 0, err(res));
    }
    const enrolled = await execa(
      process.execPath,
      [KPORT_BIN, 'login', '--proxy', server.address, '--invite', '-', '--ca-pin', server.pin, '--password-stdin'],
      { cwd: person().home, env: { PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false, input: `${oldInvite}\n` },
    );
    assert.equal(enrolled.exitCode, 4, 'the invite of the removed fay does not enrol the new one');
    assert.match(err(enrolled), /this invite is unknown, expired or already used/);
    const old = await passwordLogin(person(), 'gus', gus.password, gus.login.uri);
    assert.equal(old.exitCode, 4, "the removed gus's password and authenticator do not log in as the new one");
    const events = (await auditEvents(server)) as Array<{ spec: { type: string; user?: string; reason?: string } }>;
    assert.ok(
      events.some((e) => e.spec.type === 'user.login' && e.spec.user === 'gus' && e.spec.reason === 'login failed: no such local user'),
      'refused for want of a password, not for a spent code',
    );
    // Through the server it is users rm by another name, with the same right (user delete).
    res = await erin.kport(['rm', 'user/fay']);
    assert.equal(res.exitCode, 0, err(res));
    assert.equal(
      (await users(erin)).some((u) => u.name === 'fay'),
      false,
    );
    res = await server.kport(['rm', 'user/nobody-here']);
    assert.equal(res.exitCode, 1);
    assert.match(err(res), /There is no user nobody-here: see kport users ls\./);
  });

  test('users reset, through the server and on the host: the old certificate and password stop working, the new invite logs in', async () => {
    const carl = await invitedPerson(server, 'carl', ['access']);
    for (const who of [erin, server] as const) {
      const res = await who.kport(['users', 'reset', 'carl']);
      assert.equal(res.exitCode, 0, err(res));
      assert.match(out(res), /^User carl has been reset: their password and authenticator are cleared/);
      const invite = inviteOf(res);
      assert.ok(invite, out(res));
      const refused = await carl.kport(['kube', 'ls']);
      assert.equal(refused.exitCode, 4, 'the certificate from before the reset is refused');
      assert.match(err(refused), /this login of carl was revoked at this server \(kport users reset/);
      assert.doesNotMatch(err(refused), /no longer exists/);
      const old = await passwordLogin(person(), 'carl', carl.password, carl.login.uri);
      assert.equal(old.exitCode, 4, 'the old password and authenticator are gone');
      const login = await carl.loginWithInvite(['--proxy', server.address, '--invite', invite, '--ca-pin', server.pin], 'carl has a new long password');
      assert.equal(login.exitCode, 0, login.stderr);
      assert.equal((await carl.kport(['kube', 'ls'])).exitCode, 0);
    }
    const events = (await auditEvents(server)) as Array<{ spec: { type: string; user?: string; reason?: string } }>;
    assert.deepEqual(
      events
        .filter((e) => e.spec.type === 'user.reset')
        .map((e) => e.spec.user)
        .sort(),
      ['erin', HOST_USER].sort(),
    );
    assert.ok(
      events.some((e) => e.spec.type === 'user.login' && e.spec.user === 'carl' && e.spec.reason === 'login failed: no such local user'),
      'the old password was refused for want of one',
    );
  });

  test('a lock outlives users rm, holds for the name in any case, is listed by get lock, and only users unlock lifts it', async () => {
    const dora = await invitedPerson(server, 'dora', ['access']);
    let res = await erin.kport(['users', 'lock', 'DORA', '--message', 'laptop lost']);
    assert.equal(res.exitCode, 0, err(res));
    res = await dora.kport(['kube', 'ls']);
    assert.equal(res.exitCode, 4);
    assert.match(err(res), /dora is locked \(laptop lost\)/);
    assert.equal((await erin.kport(['users', 'rm', 'dora'])).exitCode, 0);
    const listed = (await locks(erin)).find((l) => l.metadata.name === 'dora');
    assert.equal(listed?.spec.message, 'laptop lost', 'the lock is still there after users rm');
    assert.equal(listed?.spec.created_by, 'erin');
    res = await erin.kport(['get', 'lock/Dora']);
    assert.equal(res.exitCode, 0, err(res));
    assert.match(out(res), /^DORA\tlaptop lost\tnever \(until unlocked\)\t/m);

    // Added again: the new dora is the same name, and the lock holds for her.
    res = await server.kport(['users', 'add', 'dora', '--roles', 'access']);
    assert.equal(res.exitCode, 0, err(res));
    const again = await person().loginWithInvite(['--proxy', server.address, '--invite', inviteOf(res)!, '--ca-pin', server.pin], 'dora has a long password');
    assert.notEqual(again.exitCode, 0, 'locked at login');
    assert.match(again.stderr, /dora is locked \(laptop lost\)/);

    res = await server.kport(['users', 'unlock', 'dora']);
    assert.equal(res.exitCode, 0, err(res));
    assert.deepEqual(
      (await locks(server)).filter((l) => l.metadata.name === 'dora'),
      [],
    );
    res = await server.kport(['users', 'reset', 'dora']);
    const back = await person().loginWithInvite(['--proxy', server.address, '--invite', inviteOf(res)!, '--ca-pin', server.pin], 'dora has another password');
    assert.equal(back.exitCode, 0, back.stderr);
  });

  test('a lock on a name nobody has yet is set with a warning, listed, and ends at its TTL', async () => {
    const res = await erin.kport(['users', 'lock', 'ghost', '--ttl', '3s']);
    assert.equal(res.exitCode, 0, err(res));
    assert.match(err(res), /no user is named ghost now: the lock holds for whoever logs in with that name/);
    const listed = (await locks(server)).find((l) => l.metadata.name === 'ghost');
    assert.ok(listed?.metadata.expires, 'listed with its expiry');
    await waitFor('the lock to end at its TTL', async () => !(await locks(erin)).some((l) => l.metadata.name === 'ghost'), { timeoutMs: 15_000 });
  });

  test('every change on the server host is an audit event naming the OS user: tokens, create -f, rm, users', async () => {
    const before = new Set((await auditEvents(server)).map((e) => JSON.stringify(e)));
    const file = join(server.dir, 'role.yaml');
    writeFileSync(file, stringify({ kind: 'role', version: 'v7', metadata: { name: 'host-made' }, spec: { allow: { kubernetes_labels: { env: 'dev' } } } }));
    const token = await server.token('kube');
    for (const args of [
      ['create', '-f', file],
      ['rm', 'role/host-made'],
      ['tokens', 'rm', token],
      ['users', 'add', 'hugo', '--roles', 'access'],
      ['users', 'lock', 'hugo'],
      ['users', 'unlock', 'hugo'],
      ['users', 'rm', 'hugo'],
    ]) {
      const res = await server.kport(args);
      assert.equal(res.exitCode, 0, `${args.join(' ')}: ${err(res)}`);
    }
    const events = (await auditEvents(server)).filter((e) => !before.has(JSON.stringify(e))) as Array<{
      spec: { type: string; user?: string; action?: string; remote_addr?: string };
    }>;
    const mine = events.filter((e) => e.spec.user === HOST_USER && e.spec.remote_addr === 'local').map((e) => `${e.spec.type} ${e.spec.action}`);
    for (const expected of [
      /^user\.call create \/resources\/token\/tok-[0-9a-f]{16}$/,
      /^user\.call create \/resources\/role\/host-made$/,
      /^user\.call delete \/resources\/role\/host-made$/,
      /^user\.call delete \/resources\/token\/tok-/,
      /^user\.add users add hugo --roles access$/,
      /^user\.lock users lock hugo$/,
      /^user\.unlock users unlock hugo$/,
      /^user\.remove users rm hugo$/,
    ]) {
      assert.ok(
        mine.some((m) => expected.test(m)),
        `${expected}: ${JSON.stringify(mine)}`,
      );
    }
  });

  test('a role that maps people into system:masters is written with a warning saying what it means, on the host and through the server', async () => {
    const file = join(erin.home, 'admins.yaml');
    writeFileSync(
      file,
      stringify({
        kind: 'role',
        version: 'v7',
        metadata: { name: 'admins' },
        spec: { allow: { kubernetes_labels: { env: 'dev' }, kubernetes_groups: ['system:masters'] } },
      }),
    );
    for (const who of [erin, server]) {
      const res = await who.kport(['create', '-f', file, '--force']);
      assert.equal(res.exitCode, 0, err(res));
      assert.match(
        err(res),
        /role "admins" maps people into the Kubernetes group system:masters: they are cluster-admin on every cluster its kubernetes_labels match, and no Kubernetes RBAC rule can limit them/,
      );
    }
  });
});

describe('discovery status through the server', { concurrency: false, timeout: 240_000 }, () => {
  let moto: Moto;
  let server: TestServer;
  let agent: NetworkAgent | undefined;
  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
    server = await startServer();
  });
  after(async () => {
    agent?.proc?.kill('SIGKILL');
    await agent?.proc?.catch(() => undefined);
    await server?.stop();
    await moto?.stop();
  });

  test('while a group has a leader, an editor and an auditor see it through the server as on the host; an access person is refused', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    agent = await networkAgent(moto, server, { name: 'd1', group: 'prod', matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }] });
    agent.start();
    await waitForNetworkLeader([agent]);
    const state = async (who: Person | TestServer) => {
      const res = await who.kport(['get', 'discovery_service', '-o', 'json']);
      assert.equal(res.exitCode, 0, err(res));
      return (JSON.parse(out(res)) as Array<{ spec: { host_id: string; state: string } }>).map((d) => [d.spec.host_id, d.spec.state]);
    };
    const onHost = await waitFor('the leader in get discovery_service', async () => {
      const seen = await state(server);
      return seen.length === 1 && seen[0]![1] === 'leader' && seen;
    });
    const editor = await invitedPerson(server, 'erin', ['editor']);
    const auditor = await invitedPerson(server, 'audrey', ['auditor']);
    for (const who of [editor, auditor]) {
      assert.deepEqual(await state(who), onHost);
      const res = await who.kport(['get', 'discovery_service']);
      assert.equal(res.exitCode, 0, err(res));
      assert.match(out(res), /\tprod\tleader\t/);
      const one = await who.kport(['get', `discovery_service/${onHost[0]![0]}`, '-o', 'json']);
      assert.equal(JSON.parse(out(one)).spec.state, 'leader');
    }
    const viewer = await invitedPerson(server, 'vic', ['access']);
    const res = await viewer.kport(['get', 'discovery_service']);
    assert.equal(res.exitCode, 4);
    assert.match(err(res), /may not list discovery_service resources/);
  });
});
