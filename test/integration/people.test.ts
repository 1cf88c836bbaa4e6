// People at the server (issue 20): a real `kport server start`, people spoken for with raw
// node:http2 (test/helpers/person.ts), the store opened beside the server as the admin on its
// host would (the people service's functions, as `kport users ...` calls them locally).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SqliteBackend } from '../../src/backend/sqlite.ts';
import { createInvite } from '../../src/people/invites.ts';
import { addUser, lockUser, removeUser, unlockUser } from '../../src/people/users.ts';
import { parseCertificate, userClaims } from '../../src/pki/certs.ts';
import { createResource } from '../../src/resources/store.ts';
import type { TestServer } from '../helpers/network.ts';
import { PASSWORD, type PeopleServer, peopleServer, seedClusters } from '../helpers/people-server.ts';
import { raceTimer } from '../peers/process.ts';
import { Session, keyAndCsr, post, totpAt, wrongCode } from '../helpers/person.ts';

let people: PeopleServer;
let server: TestServer;
let store: SqliteBackend;
const enroll = (name: string, roles: string[]) => people.enroll(name, roles);
const auditEvents = () => people.auditEvents();
const storeKeys = () => people.storeKeys();

const as = (p: { cert: string; key: string }) => ({ cert: p.cert, key: p.key });
const backendCall = (p: { cert: string; key: string }, call: unknown) => post(server.port, '/v1/backend', call, as(p));
describe('people: users, logins and user certificates at a real server', { timeout: 240_000 }, () => {
  before(async () => {
    people = await peopleServer();
    ({ server, store } = people);
    await seedClusters(store);
  });
  after(async () => {
    await people?.close();
  });

  test('the first start prints a one-time invite for an editor; it logs in with it, and a restart prints none', async () => {
    const invite = /^ {2}invite code: (\S+)$/m.exec(server.out)?.[1];
    assert.ok(invite, `no first-user invite in:\n${server.out}`);
    assert.match(server.out, /invite for user admin \(roles editor, auditor\)/);
    const begun = await post(server.port, '/v1/login/invite/begin', { invite });
    assert.equal(begun.body.user, 'admin');
    const { key, csr } = await keyAndCsr('admin');
    const done = await post(server.port, '/v1/login/invite/finish', { invite, password: PASSWORD, totp_code: totpAt(begun.body.totp_secret, Date.now()), csr });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.deepEqual(done.body.roles, ['editor', 'auditor']);
    await server.stop();
    await server.start();
    assert.doesNotMatch(server.out, /--invite/);
    const who = await post(server.port, '/v1/whoami', {}, { cert: done.body.cert, key });
    assert.equal(who.body.user, 'admin');
  });

  test('invite: begin shows one TOTP secret until finish; a short password and a wrong code leave the invite unspent; a finished invite is spent', async () => {
    const { invite, expires } = await addUser(store, { name: 'alice', roles: ['dev-access'] }, new Date());
    assert.ok(Date.parse(expires) - Date.now() > 55 * 60_000 && Date.parse(expires) - Date.now() <= 3_600_000, 'default invite TTL is 1 h');
    const first = await post(server.port, '/v1/login/invite/begin', { invite });
    const again = await post(server.port, '/v1/login/invite/begin', { invite });
    assert.equal(first.body.user, 'alice');
    assert.match(first.body.totp_uri, /^otpauth:\/\/totp\/kport:alice\?/);
    assert.equal(again.body.totp_secret, first.body.totp_secret);
    const secret = first.body.totp_secret as string;
    const { csr } = await keyAndCsr('alice');
    const short = await post(server.port, '/v1/login/invite/finish', { invite, password: 'short', totp_code: totpAt(secret, Date.now()), csr });
    assert.equal(short.status, 400);
    assert.match(short.body.error.message, /at least 12 characters/);
    const wrong = await post(server.port, '/v1/login/invite/finish', { invite, password: PASSWORD, totp_code: wrongCode(secret, Date.now()), csr });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, 'wrong_code');
    const at = Date.now();
    const done = await post(server.port, '/v1/login/invite/finish', { invite, password: PASSWORD, totp_code: totpAt(secret, at), csr });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    const cert = parseCertificate(done.body.cert);
    assert.equal(cert.subjectName.getField('CN')[0], 'alice');
    const claims = userClaims(Buffer.from(cert.rawData));
    assert.deepEqual({ ...claims, uid: undefined }, { user: 'alice', roles: ['dev-access'], uid: undefined });
    assert.match(claims?.uid ?? '', /^[0-9a-f-]{36}$/);
    const ttl = cert.notAfter.getTime() - Date.now();
    assert.ok(ttl > 11.9 * 3_600_000 && ttl <= 12 * 3_600_000, `a user certificate lasts 12 h (this one ${ttl} ms)`);
    const reused = await post(server.port, '/v1/login/invite/finish', { invite, password: PASSWORD, totp_code: totpAt(secret, at + 30_000), csr });
    assert.equal(reused.status, 403);
    assert.equal(reused.body.error.code, 'invite_invalid');

    // A replayed code (the one finish used) is refused; the next step's code logs in.
    const replay = await post(server.port, '/v1/login/local', { user: 'alice', password: PASSWORD, totp_code: totpAt(secret, at), csr });
    assert.equal(replay.status, 401);
    assert.match(replay.body.error.message, /counts once/);
    const next = await post(server.port, '/v1/login/local', { user: 'alice', password: PASSWORD, totp_code: totpAt(secret, at + 30_000), csr });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    const wrongPassword = await post(server.port, '/v1/login/local', {
      user: 'alice',
      password: 'not the password at all',
      totp_code: totpAt(secret, at + 60_000),
      csr,
    });
    assert.equal(wrongPassword.status, 401);
    assert.match(wrongPassword.body.error.message, /^wrong user, password or TOTP code/);
    const noUser = await post(server.port, '/v1/login/local', { user: 'nobody', password: PASSWORD, totp_code: totpAt(secret, at + 60_000), csr });
    assert.deepEqual([noUser.status, noUser.body.error.message], [401, wrongPassword.body.error.message], 'a wrong password and a missing user read the same');
    assert.equal(replay.body.error.message, wrongPassword.body.error.message, 'nor does a replayed code tell a guesser the password was right');
    const events = await auditEvents();
    assert.ok(events.some((e) => e.type === 'user.login' && e.outcome === 'allowed' && e.user === 'alice' && /127\.0\.0\.1/.test(e.remote_addr ?? '')));
    assert.ok(events.some((e) => e.type === 'user.login' && e.outcome === 'refused' && e.user === 'alice' && /wrong password/.test(e.reason ?? '')));
    assert.ok(events.some((e) => e.type === 'user.login' && e.outcome === 'refused' && /counts once/.test(e.reason ?? '')));
  });

  test('an expired invite is refused', async () => {
    await addUser(store, { name: 'late', roles: ['access'] }, new Date());
    const { invite } = await createInvite(store, 'late', 3_600_000, Date.now() - 2 * 3_600_000);
    const begun = await post(server.port, '/v1/login/invite/begin', { invite });
    assert.equal(begun.status, 403);
    assert.equal(begun.body.error.code, 'invite_invalid');
  });

  test('an access person sees exactly the clusters their roles allow, without kubeconfigs, and cannot add tokens or read secrets or audit', async () => {
    const alice = await enroll('alice2', ['dev-access']);
    const who = await post(server.port, '/v1/whoami', {}, as(alice));
    assert.equal(who.status, 200, JSON.stringify(who.body));
    assert.deepEqual(who.body.roles, ['dev-access']);
    assert.equal(who.body.kube_roles[0].metadata.name, 'dev-access');
    const listed = await backendCall(alice, { op: 'list', prefix: '/resources/kube_cluster/' });
    assert.equal(listed.status, 200);
    const clusters = listed.body.items.map((i: { value: string }) => JSON.parse(i.value));
    assert.deepEqual(clusters.map((c: any) => c.metadata.name).sort(), ['c-dev', 'c-dev2']);
    assert.ok(
      clusters.every((c: any) => c.spec.kubeconfig === undefined),
      'no kubeconfig reaches a person',
    );
    const prod = await backendCall(alice, { op: 'get', key: '/resources/kube_cluster/c-prod' });
    assert.deepEqual(prod.body, { item: null }, 'a cluster not allowed looks missing');
    const before = await storeKeys();
    const token = await backendCall(alice, {
      op: 'create',
      key: '/resources/token/tok-x',
      value: JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'tok-x' }, spec: { roles: ['discovery'] } }),
    });
    assert.equal(token.status, 403);
    assert.match(token.body.error.message, /may not create token/);
    for (const key of ['/secrets/users/alice2', '/authorities/user', '/invites/x']) {
      assert.equal((await backendCall(alice, { op: 'get', key })).status, 403, key);
    }
    assert.equal((await backendCall(alice, { op: 'list', prefix: '/resources/audit_event/' })).status, 403);
    assert.equal((await backendCall(alice, { op: 'grant', ttl_ms: 5000 })).status, 403);
    assert.equal((await post(server.port, '/v1/users', { op: 'ls' }, as(alice))).status, 403);
    assert.deepEqual(await storeKeys(), before, 'nothing written');
    assert.ok(
      (await auditEvents()).some(
        (e) => e.type === 'user.call' && e.outcome === 'refused' && e.user === 'alice2' && /may not create token/.test(e.reason ?? ''),
      ),
    );
  });

  test('an auditor reads the audit trail and nothing else', async () => {
    const bob = await enroll('bob', ['auditor']);
    const audit = await backendCall(bob, { op: 'list', prefix: '/resources/audit_event/' });
    assert.equal(audit.status, 200);
    assert.ok(audit.body.items.length > 0);
    const clusters = await backendCall(bob, { op: 'list', prefix: '/resources/kube_cluster/' });
    assert.deepEqual(clusters.body.items, []);
    for (const prefix of ['/resources/token/', '/resources/user/', '/resources/role/', '/resources/agent/']) {
      assert.equal((await backendCall(bob, { op: 'list', prefix })).status, 403, prefix);
    }
    const write = await backendCall(bob, { op: 'put', key: '/resources/audit_event/forged', value: '{}' });
    assert.equal(write.status, 403);
  });

  test('an editor adds tokens, roles (checked) and users (through /v1/users, with an invite), never raw user records or secrets', async () => {
    const carol = await enroll('carol', ['editor']);
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const verifier = `scrypt$16384$8$1$${'s'.repeat(22)}$${'h'.repeat(43)}`;
    const token = await backendCall(carol, {
      op: 'create',
      key: '/resources/token/tok-00000000000ca201',
      value: JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'tok-00000000000ca201', expires }, spec: { roles: ['Discovery'], verifier } }),
      ttl_ms: 3_600_000,
    });
    assert.equal(token.status, 200, JSON.stringify(token.body));
    const read = await backendCall(carol, { op: 'get', key: '/resources/token/tok-00000000000ca201' });
    assert.equal(JSON.parse(read.body.item.value).spec.verifier, undefined, "a token's verifier stays at the server");
    const role = { kind: 'role', version: 'v7', metadata: { name: 'ops' }, spec: { allow: { kubernetes_labels: { env: 'prod' } } } };
    assert.equal((await backendCall(carol, { op: 'put', key: '/resources/role/ops', value: JSON.stringify(role) })).status, 200);
    const bad = await backendCall(carol, {
      op: 'put',
      key: '/resources/role/bad',
      value: JSON.stringify({ kind: 'role', version: 'v7', metadata: { name: 'bad' }, spec: { allow: { nope: 1 } } }),
    });
    assert.equal(bad.status, 403);
    const builtin = await backendCall(carol, { op: 'put', key: '/resources/role/editor', value: JSON.stringify({ ...role, metadata: { name: 'editor' } }) });
    assert.equal(builtin.status, 403);
    const raw = await backendCall(carol, {
      op: 'put',
      key: '/resources/user/mallory',
      value: JSON.stringify({ kind: 'user', version: 'v2', metadata: { name: 'mallory' }, spec: { roles: ['editor'] } }),
    });
    assert.equal(raw.status, 403);
    assert.match(raw.body.error.message, /kport users/);
    assert.equal((await backendCall(carol, { op: 'list', prefix: '/secrets/' })).status, 403);
    const added = await post(server.port, '/v1/users', { op: 'add', name: 'dave', roles: ['ops'] }, as(carol));
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.ok(added.body.invite && added.body.invite_expires);
    const unknown = await post(server.port, '/v1/users', { op: 'add', name: 'erin', roles: ['no-such-role'] }, as(carol));
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.message, /no role named no-such-role/);
    const ls = await post(server.port, '/v1/users', { op: 'ls' }, as(carol));
    assert.ok(ls.body.users.some((u: any) => u.name === 'dave' && u.roles[0] === 'ops' && u.auth === 'local'));
    assert.ok((await auditEvents()).some((e) => e.type === 'user.add' && e.user === 'carol' && /users add dave/.test(e.action ?? '')));
  });

  test('after 5 wrong passwords from one address the next attempt from there is refused without being checked (the right password too), and audited', async () => {
    const frank = await enroll('frank', ['access']);
    const { csr } = await keyAndCsr('frank');
    const from = { localAddress: '127.0.0.2' };
    for (let i = 0; i < 5; i++) {
      const wrong = await post(server.port, '/v1/login/local', { user: 'frank', password: `wrong password ${i}!`, totp_code: '000000', csr }, from);
      assert.equal(wrong.status, 401);
    }
    // The right password and a fresh code: refused all the same, so nothing was checked.
    const right = await post(
      server.port,
      '/v1/login/local',
      { user: 'frank', password: PASSWORD, totp_code: totpAt(frank.secret, frank.at + 30_000), csr },
      from,
    );
    assert.equal(right.status, 429);
    assert.match(right.body.error.message, /5 failed logins for user frank from 127\.0\.0\.2: try again from there in 60 s \(this attempt was not checked\)/);
    const events = await auditEvents();
    assert.ok(
      events.some(
        (e) =>
          e.type === 'user.login' &&
          e.outcome === 'refused' &&
          e.user === 'frank' &&
          /not checked/.test(e.reason ?? '') &&
          /127\.0\.0\.2/.test(e.remote_addr ?? ''),
      ),
    );
    const { invite } = await addUser(store, { name: 'long', roles: ['access'] }, new Date());
    await post(server.port, '/v1/login/invite/begin', { invite });
    const long = await post(
      server.port,
      '/v1/login/invite/finish',
      { invite, password: 'p'.repeat(1025), totp_code: '000000', csr },
      { localAddress: '127.0.0.3' },
    );
    assert.equal(long.status, 400);
    assert.match(long.body.error.message, /at most 1024 bytes/);
  });

  test('a locked person is refused at the very next call on an open connection, which the server then closes; unlocked, they are back; users rm ends access at the next call', async () => {
    const gina = await enroll('gina', ['access']);
    let session = await Session.open(server.port, as(gina));
    const closed = () => new Promise<void>((resolve) => (session.h2.closed ? resolve() : session.h2.once('close', () => resolve())));
    try {
      assert.equal((await session.post('/v1/whoami', {})).status, 200);
      // Written by another process (the admin on the server's host): the next call sees it all the same.
      await lockUser(store, { name: 'gina', message: 'on leave' }, new Date());
      // Refused at the next call, or the connection already gone: the server closes it as soon as its watch reports the lock.
      const next = await session.post('/v1/whoami', {}).catch(() => 'closed' as const);
      if (next !== 'closed') {
        assert.equal(next.status, 403);
        assert.match(next.body.error.message, /gina is locked \(on leave\)/);
      }
      await closed();
      session = await Session.open(server.port, as(gina));
      const locked = await session.post('/v1/whoami', {});
      assert.equal(locked.status, 403);
      assert.match(locked.body.error.message, /gina is locked \(on leave\)/);
      assert.equal((await session.post('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' })).status, 403);
      session.close();
      await unlockUser(store, 'gina', new Date());
      session = await Session.open(server.port, as(gina));
      assert.equal((await session.post('/v1/whoami', {})).status, 200);
      await removeUser(store, 'gina');
      const removed = await session.post('/v1/whoami', {}).catch(() => 'closed' as const);
      if (removed !== 'closed') {
        assert.equal(removed.status, 403);
        assert.equal(removed.body.error.code, 'user_removed');
      }
      await closed();
    } finally {
      session.close();
    }
    assert.equal((await post(server.port, '/v1/whoami', {}, as(gina))).body.error.code, 'user_removed');
    // Added again under the same name: the old certificate was for the earlier gina.
    await addUser(store, { name: 'gina', roles: ['access'] }, new Date());
    assert.equal((await post(server.port, '/v1/whoami', {}, as(gina))).body.error.code, 'login_revoked');
    assert.ok((await auditEvents()).some((e) => e.type === 'user.call' && e.outcome === 'refused' && e.user === 'gina' && /locked/.test(e.reason ?? '')));
  });

  test('a watch shows a person only the clusters they may see, without kubeconfigs, and ends when they are locked', async () => {
    const walt = await enroll('walt', ['dev-access']);
    const session = await Session.open(server.port, as(walt));
    try {
      const lines: string[] = [];
      const req = session.h2.request({ ':method': 'POST', ':path': '/v1/watch', 'content-type': 'application/json' });
      req.setEncoding('utf8');
      let buffered = '';
      req.on('data', (chunk: string) => {
        buffered += chunk;
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts.filter(Boolean));
      });
      const ended = new Promise<void>((resolve) => req.on('close', resolve));
      req.end(JSON.stringify({ op: 'watch', prefix: '/resources/kube_cluster/' }));
      await new Promise((r) => setTimeout(r, 500));
      for (const [name, env] of [
        ['w-prod', 'prod'],
        ['w-dev', 'dev'],
      ] as const) {
        await createResource(store, {
          kind: 'kube_cluster',
          version: 'v3',
          metadata: { name, labels: { env } },
          spec: { kubeconfig: `# KUBECONFIG-SECRET-${name}\n` },
        });
      }
      const deadline = Date.now() + 30_000;
      while (!lines.some((l) => l.includes('w-dev')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const events = lines.map((l) => JSON.parse(l));
      assert.deepEqual(
        events.map((e) => JSON.parse(e.item.value).metadata.name),
        ['w-dev'],
        'only the allowed cluster',
      );
      assert.ok(!lines.join('').includes('KUBECONFIG-SECRET'), 'no kubeconfig in a watch');
      await lockUser(store, { name: 'walt' }, new Date());
      const closed = await Promise.race([ended.then(() => true), raceTimer(30_000, false)]);
      assert.equal(closed, true, 'the watch ended after the lock (the server rechecks every 5 s)');
    } finally {
      session.close();
    }
  });
});
