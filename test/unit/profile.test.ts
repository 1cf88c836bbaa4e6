// Login profiles on disk: owner-only files, writes that never leave half a file, current-profile,
// and the rule that decides whether commands run locally or through the server.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decideWhere } from '../../src/client/person.ts';
import {
  checkCredential,
  currentProfile,
  currentProfileName,
  kportHome,
  profileName,
  readProfile,
  removeCredential,
  saveProfile,
} from '../../src/client/profile.ts';
import { createAuthority, generateKeys, issueLeaf, keyPem, certPem } from '../../src/pki/certs.ts';
import { tempHome } from '../helpers/run.ts';

async function credential(validForMs = 3_600_000) {
  const ca = await createAuthority('test user CA', 86_400_000);
  const keys = await generateKeys();
  const cert = await issueLeaf(ca, keys.publicKey, { commonName: 'alice', validForMs, usage: 'client' });
  return { ca: certPem(ca.cert), cert: certPem(cert), key: await keyPem(keys.privateKey) };
}

const info = (proxy: string) => ({
  proxy,
  user: 'alice',
  roles: ['access'],
  expires: new Date(Date.now() + 3_600_000).toISOString(),
  ca_pin: `sha256:${'a'.repeat(64)}`,
});

test('profiles: $KPORT_HOME or ~/.kport; <host>_<port> names, an IPv6 address without its colons', () => {
  assert.equal(kportHome({ HOME: '/h' }), '/h/.kport');
  assert.equal(kportHome({ HOME: '/h', KPORT_HOME: '/k' }), '/k');
  assert.equal(profileName({ host: 'kport.example.com', port: 3080 }), 'kport.example.com_3080');
  assert.equal(profileName({ host: '::1', port: 3080 }), '__1_3080');
});

test('profiles: the key, certificate, CA and profile.json are 0600 in 0700 directories, current-profile names the profile, and no temporary file is left', async () => {
  const home = join(tempHome(), '.kport');
  const files = await credential();
  const saved = saveProfile(home, { host: '127.0.0.1', port: 3080 }, info('127.0.0.1:3080'), files);
  assert.equal(saved.name, '127.0.0.1_3080');
  assert.equal(statSync(home).mode & 0o777, 0o700);
  assert.equal(statSync(saved.dir).mode & 0o777, 0o700);
  for (const f of ['key.pem', 'cert.pem', 'ca.pem', 'profile.json']) assert.equal(statSync(join(saved.dir, f)).mode & 0o777, 0o600, f);
  assert.equal(statSync(join(home, 'current-profile')).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(saved.dir).sort(), ['ca.pem', 'cert.pem', 'key.pem', 'profile.json']);
  assert.equal(currentProfileName(home), '127.0.0.1_3080');
  const read = currentProfile(home)!;
  assert.equal(read.user, 'alice');
  assert.equal(read.credential?.key, files.key);
  assert.equal(checkCredential(read.credential!).matches, true);
  // A second server becomes the current one; the first stays as it was.
  const other = saveProfile(home, { host: 'kport.example.com', port: 443 }, info('kport.example.com:443'), await credential());
  assert.equal(currentProfileName(home), other.name);
  assert.equal(readProfile(home, '127.0.0.1_3080')?.credential?.cert, files.cert);
});

test('profiles: a write replaces the file by renaming (a reader never sees half of it; an open file keeps the old one)', async () => {
  const home = join(tempHome(), '.kport');
  const first = saveProfile(home, { host: 'h', port: 1 }, info('h:1'), await credential());
  const before = statSync(join(first.dir, 'key.pem')).ino;
  const second = await credential();
  saveProfile(home, { host: 'h', port: 1 }, info('h:1'), second);
  assert.notEqual(statSync(join(first.dir, 'key.pem')).ino, before, 'a new inode: written aside and renamed into place');
  assert.equal(readFileSync(join(first.dir, 'key.pem'), 'utf8'), second.key);
});

test('profiles: logout removes the key and certificate and keeps the server and its pin; a current-profile naming a path outside profiles/ is nothing', async () => {
  const home = join(tempHome(), '.kport');
  const saved = saveProfile(home, { host: 'h', port: 1 }, info('h:1'), await credential());
  assert.equal(removeCredential(saved), true);
  assert.equal(existsSync(join(saved.dir, 'key.pem')), false);
  assert.equal(existsSync(join(saved.dir, 'cert.pem')), false);
  const after = currentProfile(home)!;
  assert.equal(after.credential, undefined);
  assert.equal(after.ca_pin, info('h:1').ca_pin);
  assert.equal(removeCredential(after), false);
  mkdirSync(join(home, 'elsewhere'), { recursive: true });
  writeFileSync(join(home, 'elsewhere', 'profile.json'), JSON.stringify(info('x:1')));
  for (const name of ['../elsewhere', '..', '/etc', 'a/b']) {
    writeFileSync(join(home, 'current-profile'), name);
    assert.equal(currentProfileName(home), undefined, name);
  }
});

test('where commands run: through the profile unless -c, KPORT_CONFIG or --data-dir names a store, the command runs the store, or there is no login', async () => {
  const dir = tempHome();
  const env = { HOME: dir };
  assert.match((decideWhere({ env }) as { why: string }).why, /^no profile in /);
  const saved = saveProfile(kportHome(env), { host: '127.0.0.1', port: 3080 }, info('127.0.0.1:3080'), await credential());
  const where = decideWhere({ env });
  assert.equal(where.via, 'server');
  assert.match(where.why, /^logged in to 127\.0\.0\.1:3080 as alice/);
  assert.deepEqual(
    [
      decideWhere({ env, config: 'kport.yaml' }),
      decideWhere({ env: { ...env, KPORT_CONFIG: '/etc/kport.yaml' } }),
      decideWhere({ env, dataDir: '/d' }),
      decideWhere({ env, localStore: true }),
    ].map((w) => w.via),
    ['local', 'local', 'local', 'local'],
  );
  removeCredential(saved);
  const out = decideWhere({ env });
  assert.equal(out.via, 'local');
  assert.match(out.why, /^logged out of 127\.0\.0\.1:3080/);
});

test("where commands run: a key that is not the certificate's is refused (exit 4), not used", async () => {
  const dir = tempHome();
  const env = { HOME: dir };
  const a = await credential();
  const b = await credential();
  saveProfile(kportHome(env), { host: 'h', port: 1 }, info('h:1'), { ...a, key: b.key });
  assert.throws(
    () => decideWhere({ env }),
    (err: Error & { exitCode?: number }) =>
      err.exitCode === 4 && /is not the one its certificate was issued for: run kport login --proxy h:1 again/.test(err.message),
  );
});
