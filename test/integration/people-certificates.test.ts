// People's certificates at the server (issue 20): whatever a certificate is, the call it carries is
// refused unless it is a current user certificate of this server's user CA, and nothing is written.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser } from '../../src/people/users.ts';
import { certPem, createAuthority, generateKeys, issueLeaf, keyPem, parseCertificate } from '../../src/pki/certs.ts';
import { loadAuthorities } from '../../src/server/auth/authorities.ts';
import type { TestServer } from '../helpers/network.ts';
import { type PeopleServer, peopleServer } from '../helpers/people-server.ts';
import { keyAndCsr, post, totpAt } from '../helpers/person.ts';

let people: PeopleServer;
let server: TestServer;
let store: SqliteBackend;
const enroll = (name: string, roles: string[]) => people.enroll(name, roles);
const auditEvents = () => people.auditEvents();
const storeKeys = () => people.storeKeys();
const as = (p: { cert: string; key: string }) => ({ cert: p.cert, key: p.key });
const backendCall = (p: { cert: string; key: string }, call: unknown) => post(server.port, '/v1/backend', call, as(p));

describe('people: certificates and secrets at a real server', { timeout: 240_000 }, () => {
  before(async () => {
    people = await peopleServer();
    ({ server, store } = people);
  });
  after(async () => {
    await people?.close();
  });

  test('certificates: another CA, a host certificate as a user one and the reverse, an expired one, roles changed and re-signed: refused, audited, nothing written', async () => {
    const hank = await enroll('hank', ['access']);
    const before = await storeKeys();
    const write = {
      op: 'create',
      key: '/resources/token/tok-forged',
      value: JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'tok-forged' }, spec: { roles: ['discovery'] } }),
    };

    // A user certificate from another CA, naming an editor.
    const evil = await createAuthority('kport user CA', 3_600_000);
    const keys = await generateKeys();
    const key = await keyPem(keys.privateKey);
    const foreign = certPem(
      await issueLeaf({ cert: evil.cert, keys: evil.keys }, keys.publicKey, {
        commonName: 'admin',
        usage: 'client',
        validForMs: 3_600_000,
        user: { roles: ['editor'] },
      }),
    );
    for (const path of ['/v1/whoami', '/v1/backend']) {
      const res = await post(server.port, path, write, { cert: foreign, key });
      assert.equal(res.status, 401, path);
    }
    // hank's certificate with its roles changed to editor, re-signed by another key under the same issuer name.
    const real = parseCertificate(hank.cert);
    const hankKeys = await import('../../src/pki/certs.ts').then((m) => m.importKeyPem(hank.key));
    const resigned = certPem(
      await issueLeaf({ cert: evil.cert, keys: evil.keys }, hankKeys.publicKey, {
        commonName: 'hank',
        usage: 'client',
        validForMs: 3_600_000,
        user: { roles: ['editor'] },
      }),
    );
    assert.equal(parseCertificate(resigned).issuer, real.issuer);
    assert.equal((await post(server.port, '/v1/backend', write, { cert: resigned, key: hank.key })).status, 401);

    // The real user CA (the admin on the server host holds the seal key), for an expired certificate and a host-claims one.
    const { authorities } = await loadAuthorities(store, join(server.dir, 'data'));
    const expired = certPem(
      await issueLeaf(authorities.user, keys.publicKey, { commonName: 'hank', usage: 'client', validForMs: -30_000, user: { roles: ['access'] } }),
    );
    const old = await post(server.port, '/v1/whoami', {}, { cert: expired, key });
    assert.equal(old.status, 401);
    assert.match(old.body.error.message, /your kport login expired at .*: run kport login/);

    // A host certificate (a real join) where a person's is expected, and a person's where a host's is.
    const token = await server.token('discovery');
    const agentKeys = await generateKeys();
    const { createCsr } = await import('../../src/pki/certs.ts');
    const joined = await post(server.port, '/v1/join', { token, roles: ['discovery'], hostname: 'h1', csr: await createCsr(agentKeys, 'h1') });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const host = { cert: joined.body.cert, key: await keyPem(agentKeys.privateKey) };
    for (const body of [{ op: 'ls' }, { op: 'add', name: 'x', roles: ['editor'] }])
      assert.equal((await post(server.port, '/v1/users', body, host)).status, 403);
    assert.equal((await post(server.port, '/v1/whoami', {}, host)).status, 403);
    const renew = await post(server.port, '/v1/renew', { csr: (await keyAndCsr('x')).csr }, as(hank));
    assert.equal(renew.status, 403);
    const heartbeat = await backendCall(hank, { op: 'put', key: `/resources/discovery_service/${joined.body.host_id}`, value: '{}', ttl_ms: 60_000 });
    assert.equal(heartbeat.status, 403);
    // A user-CA certificate with host claims in it is no host.
    const fakeHost = certPem(
      await issueLeaf(authorities.user, keys.publicKey, {
        commonName: joined.body.host_id,
        usage: 'client',
        validForMs: 3_600_000,
        host: { roles: ['discovery'], discovery_group: '' },
      }),
    );
    assert.equal((await post(server.port, '/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' }, { cert: fakeHost, key })).status, 401);

    const after = (await storeKeys()).filter((k) => !k.startsWith('/resources/agent/') && !k.startsWith('/resources/token/') && !k.startsWith('/joins/'));
    assert.deepEqual(
      after,
      before.filter((k) => !k.startsWith('/resources/token/')),
      'nothing written but the join',
    );
    assert.equal(await store.get('/resources/token/tok-forged'), undefined);
    const refused = (await auditEvents()).filter((e) => e.outcome === 'refused');
    assert.ok(refused.some((e) => /not issued by this cluster's host CA \(agents\) or user CA \(people\)/.test(e.reason ?? '')));
    // The expired certificate was the user CA's own: the event is a person's call and names them.
    const expiredCall = refused.find((e) => /your kport login expired/.test(e.reason ?? ''));
    assert.equal(expiredCall?.type, 'user.call', JSON.stringify(expiredCall));
    assert.equal(expiredCall?.user, 'hank');
    assert.ok(refused.some((e) => /person's call: it needs a user certificate/.test(e.reason ?? '')));
  });

  test('nothing of a password, TOTP secret or invite code sits in the store file or the audit trail in clear', async () => {
    const { invite } = await addUser(store, { name: 'ivy', roles: ['access'] }, new Date());
    const begun = await post(server.port, '/v1/login/invite/begin', { invite });
    const secret = begun.body.totp_secret as string;
    const { csr } = await keyAndCsr('ivy');
    const password = 'ivy-unique-password-7Q2x';
    assert.equal((await post(server.port, '/v1/login/invite/finish', { invite, password, totp_code: totpAt(secret, Date.now()), csr })).status, 200);
    const data = join(server.dir, 'data');
    const files = readdirSync(data).filter((f) => f.startsWith('kport.db'));
    assert.ok(files.length > 0);
    const bytes = Buffer.concat(files.map((f) => readFileSync(join(data, f))));
    for (const [what, text] of [
      ['password', password],
      ['TOTP secret', secret],
      ['invite code', invite],
    ] as const) {
      assert.equal(bytes.includes(Buffer.from(text)), false, `the ${what} is in the store file`);
      assert.equal(server.log.includes(text), false, `the ${what} is in the server's log`);
      assert.equal(JSON.stringify(await auditEvents()).includes(text), false, `the ${what} is in the audit trail`);
    }
  });
});
