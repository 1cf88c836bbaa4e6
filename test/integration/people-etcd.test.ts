// A server on etcd: a person is invited, logs in with the built CLI (password + TOTP), and a login
// with their real password but a wrong code is refused and audited. Then every key and value in
// etcd, read with the etcd3 client, is searched for the password, the TOTP secret (base32 and the
// raw bytes, also as hex and base64), the invite code and the client's private key: none is there
// in clear (the sqlite case is in people.test.ts).
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { Etcd3 } from 'etcd3';
import * as OTPAuth from 'otpauth';
import { KPORT_BIN } from '../helpers/agent.ts';
import { invitedPerson } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const PREFIX = '/kport-people';

describe('people on etcd: nothing secret in the keys or values', { timeout: 180_000 }, () => {
  let etcd: EtcdCluster | undefined;
  let server: TestServer | undefined;
  before(async (t) => {
    if (havePeer(t as never, 'etcd', [BINARIES.etcd()])) etcd = await startEtcd({ members: 1 });
  });
  after(async () => {
    await server?.stop();
    await etcd?.stop();
  });

  test('invite + login through a server on etcd: no password, TOTP secret, invite code or private key in any etcd key or value', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    server = await startServer({ storage: { type: 'etcd', peers: etcd.endpoints, prefix: PREFIX } });
    const password = 'ivy-unique-password-9Zq4w';
    const ivy = await invitedPerson(server, 'ivy', ['access'], password);
    const totp = OTPAuth.URI.parse(ivy.login.uri) as OTPAuth.TOTP;
    const totpBase32 = totp.secret.base32;
    const totpRaw = Buffer.from(totp.secret.bytes);
    const keyPem = readFileSync(join(ivy.home, '.kport', 'profiles', `127.0.0.1_${server.port}`, 'key.pem'), 'utf8');
    const keyDer = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
    const scalar = Buffer.from(createPrivateKey(keyPem).export({ format: 'jwk' }).d!, 'base64url');

    // Her real password with a wrong code: refused and audited (an audit event must not carry what was tried).
    const wrongCode = String((Number(totp.generate()) + 1) % 1_000_000).padStart(6, '0');
    const refused = await execa(process.execPath, [KPORT_BIN, 'login', '--proxy', server.address, '--user', 'ivy', '--password-stdin'], {
      cwd: ivy.home,
      env: { HOME: ivy.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      input: `${password}\n${wrongCode}\n`,
    });
    assert.equal(refused.exitCode, 4, String(refused.stderr));
    // Her session works through the server (so the store holds her user, secrets and audit events).
    const ls = await ivy.kport(['kube', 'ls']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));

    const client = new Etcd3({ hosts: etcd.endpoints });
    let all: Record<string, Buffer>;
    try {
      all = await client.getAll().buffers();
    } finally {
      client.close();
    }
    const keys = Object.keys(all);
    // The search is over the real thing: ivy's user, her sealed secrets and the audit of her logins are there.
    assert.ok(keys.includes(`${PREFIX}/resources/user/ivy`), keys.join('\n'));
    assert.ok(keys.includes(`${PREFIX}/secrets/users/ivy`), keys.join('\n'));
    const audit = keys.filter((k) => k.startsWith(`${PREFIX}/resources/audit_event/`)).map((k) => all[k]!.toString('utf8'));
    assert.ok(
      audit.some((v) => v.includes('"user":"ivy"') && v.includes('"outcome":"refused"')),
      'the refused login is audited',
    );
    assert.ok(
      audit.some((v) => v.includes('"user":"ivy"') && v.includes('"outcome":"allowed"')),
      'the login is audited',
    );

    const everything = Buffer.concat(Object.entries(all).flatMap(([k, v]) => [Buffer.from(k), Buffer.from('\n'), v, Buffer.from('\n')]));
    const keyBody = keyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const needles: Array<[string, Buffer]> = [
      ['password', Buffer.from(password)],
      ['TOTP secret (base32)', Buffer.from(totpBase32)],
      ['TOTP secret (raw)', totpRaw],
      ['TOTP secret (hex)', Buffer.from(totpRaw.toString('hex'))],
      ['TOTP secret (base64)', Buffer.from(totpRaw.toString('base64'))],
      ['invite code', Buffer.from(ivy.invite)],
      ['private key (PEM body)', Buffer.from(keyBody.slice(0, 64))],
      ['private key (DER)', keyDer],
      ['private key (scalar)', scalar],
      ['private key (scalar, base64url)', Buffer.from(scalar.toString('base64url'))],
    ];
    for (const [what, needle] of needles) {
      assert.equal(everything.includes(needle), false, `the ${what} is in etcd`);
      assert.equal(server.log.includes(needle.toString('utf8')), false, `the ${what} is in the server's log`);
    }
  });
});
