// A person end to end against a real `kport server start`: invited on the server's store, logs in
// with the built CLI (password + a TOTP code computed here with otpauth), sees exactly the clusters
// their role allows through the server, is locked out at the next call, and logs out.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { eksCluster as cluster } from '../helpers/resources.ts';

describe('people: invite, login, kube ls through the server, lock, logout', { timeout: 180_000 }, () => {
  let server: TestServer;
  after(async () => server?.stop());

  test('users add on the server -> login --invite with --password-stdin -> status -> kube ls shows exactly the allowed clusters -> users lock (by an editor through the server) refuses the next call, unlock restores it, users rm ends it -> logout', async () => {
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
        stringify(cluster('dev-a', { env: 'dev' })),
        stringify(cluster('dev-b', { env: 'dev' })),
        stringify(cluster('prod-a', { env: 'prod' })),
      ].join('---\n'),
    );
    let res = await server.kport(['create', '-f', setup]);
    assert.equal(res.exitCode, 0, String(res.stderr));

    res = await server.kport(['users', 'add', 'alice', '--roles', 'dev-access']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const line = /^ {2}(kport login --proxy (\S+) --ca-pin (sha256:[0-9a-f]{64}) --invite)\n {2}invite code: (\S+)$/m.exec(String(res.stdout));
    assert.ok(line, String(res.stdout));
    assert.equal(line[2], server.address);
    assert.equal(line[3], server.pin);
    assert.match(String(res.stdout), /The one-time invite expires at \d{4}-/);

    const alice = person();
    const login = await alice.loginWithInvite(['--proxy', line[2]!, '--invite', line[4]!, '--ca-pin', line[3]!], 'correct horse battery staple');
    assert.equal(login.exitCode, 0, login.stderr);
    assert.match(
      String(login.stdout),
      new RegExp(`^Logged in as alice \\(roles: dev-access\\) at ${server.address.replace(/\./g, '\\.')} until \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`),
    );
    assert.doesNotMatch(login.stderr, /first contact/, 'the pin was given: no trust on first use');
    const dir = join(alice.home, '.kport', 'profiles', `127.0.0.1_${server.port}`);
    assert.equal(statSync(join(dir, 'key.pem')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(alice.home, '.kport', 'current-profile'), 'utf8').trim(), `127.0.0.1_${server.port}`);

    res = await alice.kport(['status']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(String(res.stdout), /User: +alice\nRoles: +dev-access\n/);
    assert.match(String(res.stdout), new RegExp(`Commands: +run through the server at ${server.address.replace(/\./g, '\\.')}`));

    res = await alice.kport(['kube', 'ls', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.deepEqual(
      JSON.parse(String(res.stdout)).map((c: { kube_cluster_name: string }) => c.kube_cluster_name),
      ['dev-a', 'dev-b'],
    );
    // prod-a is not there as far as alice can tell, not even by name.
    res = await alice.kport(['get', 'kube_cluster/prod-a']);
    assert.notEqual(res.exitCode, 0);
    // An access person cannot add tokens: the server's sentence, exit 4.
    res = await alice.kport(['tokens', 'add', '--type=discovery']);
    assert.equal(res.exitCode, 4, String(res.stderr));
    assert.match(String(res.stderr), new RegExp(`The kport server at ${server.address.replace(/\./g, '\\.')} refused: `));

    // An editor, logged in, manages people through /v1/users with their certificate.
    res = await server.kport(['users', 'add', 'erin', '--roles', 'editor']);
    const erinInvite = /^ {2}invite code: (\S+)$/m.exec(String(res.stdout))![1]!;
    const erin = person();
    const erinLogin = await erin.loginWithInvite(['--proxy', server.address, '--invite', erinInvite, '--ca-pin', server.pin], 'another long password');
    assert.equal(erinLogin.exitCode, 0, erinLogin.stderr);
    res = await erin.kport(['users', 'add', 'bob', '--roles', 'access', '--invite-ttl', '2h']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(
      String(res.stdout),
      new RegExp(`^ {2}kport login --proxy ${server.address.replace(/\./g, '\\.')} --ca-pin ${server.pin} --invite$`, 'm'),
      "the profile's server and pin",
    );
    res = await erin.kport(['users', 'ls', '-o', 'json']);
    assert.deepEqual(
      JSON.parse(String(res.stdout))
        .map((u: { name: string }) => u.name)
        .filter((n: string) => n !== 'admin'),
      ['alice', 'bob', 'erin'],
    );
    // alice (access) may not manage people.
    res = await alice.kport(['users', 'ls']);
    assert.equal(res.exitCode, 4, String(res.stderr));

    res = await erin.kport(['users', 'lock', 'alice', '--message', 'laptop lost']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await alice.kport(['kube', 'ls']);
    assert.equal(res.exitCode, 4, String(res.stderr));
    assert.match(String(res.stderr), /refused: .*lock.*laptop lost/i);
    res = await server.kport(['users', 'unlock', 'alice']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await alice.kport(['kube', 'ls', '-q']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await server.kport(['users', 'rm', 'alice']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await alice.kport(['kube', 'ls']);
    assert.equal(res.exitCode, 4, 'users rm ends access at the next call');

    res = await alice.kport(['logout']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await alice.kport(['status']);
    assert.match(String(res.stdout), /Commands: +run locally: logged out of/);
  });
});
