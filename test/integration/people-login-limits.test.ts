// Local logins at a real `kport server start`, spoken for with raw node:http2 from several loopback
// addresses (each its own source): passwords compared in NFKC, a login name of any length named in
// the audit trail, and the throttle deciding by user and address first.
import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { FREE_PAIR_FAILURES, FREE_USER_FAILURES } from '../../src/people/throttle.ts';
import { addUser } from '../../src/people/users.ts';
import { listResources } from '../../src/resources/store.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post, totpAt } from '../helpers/person.ts';

let server: TestServer;
let store: SqliteBackend;

async function auditEvents(): Promise<Array<{ type: string; outcome: string; user?: string; reason?: string; remote_addr?: string }>> {
  return (await listResources<any>(store, 'audit_event')).map((e) => e.spec);
}

/** users add, then invite begin and finish from 127.0.0.1 with `password`: the TOTP secret and when its code was used. */
async function enroll(name: string, password: string): Promise<{ secret: string; at: number }> {
  const { invite } = await addUser(store, { name, roles: ['access'] }, new Date());
  const begun = await post(server.port, '/v1/login/invite/begin', { invite });
  assert.equal(begun.status, 200, JSON.stringify(begun.body));
  const at = Date.now();
  const done = await post(server.port, '/v1/login/invite/finish', {
    invite,
    password,
    totp_code: totpAt(begun.body.totp_secret, at),
    csr: (await keyAndCsr(name)).csr,
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return { secret: begun.body.totp_secret, at };
}

/** A login with the next step's code (the enrolment used this one's): a code counts once, and one step ahead is accepted. */
async function login(name: string, password: string, enrolled: { secret: string; at: number }, from = '127.0.0.1') {
  return post(
    server.port,
    '/v1/login/local',
    { user: name, password, totp_code: totpAt(enrolled.secret, enrolled.at + 30_000), csr: (await keyAndCsr(name)).csr },
    { localAddress: from },
  );
}

describe('people: local logins, their passwords, names and throttle at a real server', { timeout: 180_000 }, () => {
  before(async () => {
    server = await startServer();
    store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
  });
  after(async () => {
    await store?.close();
    await server?.stop();
  });

  test('a password set composed (NFC) passes typed decomposed (NFD); a verifier from before normalising passes typed in the other form, and is replaced at that login', async () => {
    const nfc = 'crème brûlée à Århus'.normalize('NFC');
    const nfd = nfc.normalize('NFD');
    const nora = await enroll('nora', nfc);
    const typed = await login('nora', nfd, nora);
    assert.equal(typed.status, 200, JSON.stringify(typed.body));
    // olive set hers before kport normalised passwords, on a system that typed it decomposed.
    const olive = await enroll('olive', 'placeholder password');
    const stored = await store.get('/secrets/users/olive');
    const salt = randomBytes(16);
    const legacy = `scrypt$16384$8$1$${salt.toString('base64url')}$${scryptSync(nfd, salt, 32, { N: 16384, r: 8, p: 1 }).toString('base64url')}`;
    await store.put(stored!.key, JSON.stringify({ ...JSON.parse(stored!.value), password: legacy }));
    const again = await login('olive', nfc, olive);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.match(JSON.parse((await store.get('/secrets/users/olive'))!.value).password, /^scrypt-nfkc\$/);
  });

  test('a login name of any length is named in its audit event, cut to 256 characters with the length it had', async () => {
    for (const length of [300, 5000]) {
      const name = `${'n'.repeat(length - 4)}long`;
      const refused = await post(
        server.port,
        '/v1/login/local',
        { user: name, password: 'a wrong password', totp_code: '000000', csr: (await keyAndCsr('x')).csr },
        { localAddress: '127.0.0.9' },
      );
      assert.equal(refused.status, 401, JSON.stringify(refused.body));
      const event = (await auditEvents()).find((e) => e.type === 'user.login' && e.outcome === 'refused' && e.user?.endsWith(`(${length} characters)`));
      assert.ok(event, `an event names the ${length}-character user`);
      assert.equal(event.user!.length, 256);
      assert.ok(event.user!.startsWith('nnnn'));
    }
  });

  test('strangers failing from several addresses hold back those addresses and new ones, audited as alerts; the person logs in from the address she logged in from before', async () => {
    const password = 'hana has a long password';
    const hana = await enroll('hana', password);
    const strangers = Array.from({ length: FREE_USER_FAILURES / FREE_PAIR_FAILURES }, (_, i) => `127.0.0.${21 + i}`);
    const { csr } = await keyAndCsr('stranger');
    for (const from of strangers) {
      for (let i = 0; i < FREE_PAIR_FAILURES; i++) {
        const wrong = await post(
          server.port,
          '/v1/login/local',
          { user: 'hana', password: `guess number ${i} at ${from}`, totp_code: '000000', csr },
          { localAddress: from },
        );
        assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
      }
    }
    const again = await post(
      server.port,
      '/v1/login/local',
      { user: 'HANA', password: 'one more guess here', totp_code: '000000', csr },
      { localAddress: strangers[0] },
    );
    assert.equal(again.status, 429);
    assert.match(
      again.body.error.message,
      /^5 failed logins for user hana from 127\.0\.0\.21: try again from there in \d+ s \(this attempt was not checked\)$/,
    );
    const elsewhere = await login('hana', password, hana, '127.0.0.30');
    assert.equal(elsewhere.status, 429, 'an address hana never logged in from waits, even with her password and code');
    assert.match(
      elsewhere.body.error.message,
      /^20 failed logins for user hana from several addresses: from an address it has not logged in from lately, try again in \d+ s, or log in from one it has \(this attempt was not checked\)$/,
    );
    const home = await login('hana', password, hana);
    assert.equal(home.status, 200, JSON.stringify(home.body));
    assert.equal(home.body.user, 'hana');
    const alerts = (await auditEvents()).filter((e) => e.type === 'user.login.throttled' && e.user === 'hana');
    assert.ok(
      alerts.some(
        (e) =>
          e.remote_addr === '127.0.0.21' && /^5 failed logins for user hana from 127\.0\.0\.21: its next attempts from there wait 1 min/.test(e.reason ?? ''),
      ),
      JSON.stringify(alerts),
    );
    assert.ok(
      alerts.some((e) => /^20 failed logins for user hana from 4 address\(es\): .*someone may be guessing its password or code$/.test(e.reason ?? '')),
      JSON.stringify(alerts),
    );
  });
});
