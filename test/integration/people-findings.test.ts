// A black-box tester's findings on network mode with people (issue 20), against a real
// `kport server start` and the built CLI: names that read as built-in roles, invisible characters
// reaching the terminal, who is who in `get audit`, and a profile others can read or write.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';

/** A zero width space, a soft hyphen, a BOM, a Hangul filler and a tag character: a terminal shows none of them. */
const INVISIBLE = 'lost\u200blaptop\u00ad\ufeff\u3164\u{e0001}';
const RAW_INVISIBLE = /[\p{Cf}\u3164\u115f\u1160\uffa0]/u;
const KUBECONFIG =
  "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";

describe('people: the black-box findings, through the server', { timeout: 240_000 }, () => {
  let server: TestServer;
  let erin: Person;
  let alice: Person;
  before(async () => {
    server = await startServer();
    erin = await invitedPerson(server, 'erin', ['editor']);
    alice = await invitedPerson(server, 'alice', ['access']);
  });
  after(async () => server?.stop());

  test('names that read as built-in roles are refused: a role Editor by an editor through the server, users editor and Access', async () => {
    const file = join(erin.home, 'Editor.yaml');
    writeFileSync(
      file,
      stringify({ kind: 'role', version: 'v7', metadata: { name: 'Editor' }, spec: { allow: { rules: [{ resources: ['*'], verbs: ['*'] }] } } }),
    );
    let res = await erin.kport(['create', '-f', file]);
    assert.notEqual(res.exitCode, 0);
    assert.match(String(res.stderr), /Editor is a built-in kport role \(editor, in another case\) and cannot be redefined: give yours another name/);
    res = await erin.kport(['get', 'role', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.deepEqual(
      JSON.parse(String(res.stdout)).filter(
        (r: { metadata: { name: string; labels?: Record<string, string> } }) =>
          r.metadata.name.toLowerCase() === 'editor' && r.metadata.labels?.['kport.dev/origin'] !== 'builtin',
      ),
      [],
      'nothing written (the built-in editor is listed, marked)',
    );

    // Bad input (2) through the server as on its host: only a refusal of who may do it is 4 (README "Exit codes").
    for (const [who, name, exit] of [
      [erin, 'editor', 2],
      [erin, 'Access', 2],
      [server, 'AUDITOR', 2],
    ] as const) {
      res = await who.kport(['users', 'add', name, '--roles', 'access']);
      assert.equal(res.exitCode, exit, `${name}: ${String(res.stderr)}`);
      assert.match(
        String(res.stderr),
        new RegExp(`user name ${name} is refused: ${name} reads as the built-in role ${name.toLowerCase()}, so no user may be named so: pick another name`),
      );
    }
    res = await server.kport(['users', 'ls', '-o', 'json']);
    assert.deepEqual(
      JSON.parse(String(res.stdout))
        .map((u: { name: string }) => u.name)
        .filter((n: string) => n !== 'bob')
        .sort(),
      ['admin', 'alice', 'erin'],
    );
  });

  test('format characters and Hangul fillers in a lock message and a label value are shown escaped, in text and JSON', async () => {
    let res = await server.kport(['users', 'add', 'bob', '--roles', 'access']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    res = await erin.kport(['users', 'lock', 'bob', '--message', INVISIBLE]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const file = join(erin.home, 'cluster.yaml');
    writeFileSync(
      file,
      stringify({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'c1', labels: { team: `pay\u200bments\u00ad` } }, spec: { kubeconfig: KUBECONFIG } }),
    );
    res = await erin.kport(['create', '-f', file]);
    assert.equal(res.exitCode, 0, String(res.stderr));

    const runs: Array<[Person | TestServer, string[]]> = [
      [erin, ['users', 'ls']],
      [erin, ['users', 'ls', '-o', 'json']],
      [erin, ['get', 'kube_cluster']],
      [erin, ['get', 'kube_cluster', '-o', 'json']],
      [alice, ['kube', 'ls']],
      [alice, ['kube', 'ls', '-o', 'json']],
    ];
    for (const [who, args] of runs) {
      res = await who.kport(args);
      assert.equal(res.exitCode, 0, `${args.join(' ')}: ${String(res.stderr)}`);
      const out = String(res.stdout);
      assert.doesNotMatch(out, RAW_INVISIBLE, args.join(' '));
      assert.match(out, args[0] === 'users' ? /lost\\u200blaptop/ : /pay\\u200bments/, args.join(' '));
    }
    res = await erin.kport(['users', 'ls', '-o', 'json']);
    assert.equal(JSON.parse(String(res.stdout)).find((u: { name: string }) => u.name === 'bob').locked.message, INVISIBLE, 'JSON reads back the same message');
  });

  test('get audit shows who: a User column naming the person (the expired-certificate event: people.test.ts)', async () => {
    const res = await server.kport(['get', 'audit']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const [header, ...rows] = String(res.stdout)
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t'));
    assert.deepEqual(header, ['Time', 'Type', 'Outcome', 'User', 'Cluster', 'Host', 'Token', 'Action', 'Reason', 'From']);
    assert.ok(
      rows.some((r) => r[1] === 'user.login' && r[3] === 'alice'),
      String(res.stdout),
    );
  });

  test('a profile others can read the key of, or write into, is refused with the chmod to run (exit 4); fixed, it works again', async () => {
    const home = join(alice.home, '.kport');
    const dir = join(home, 'profiles', `127.0.0.1_${server.port}`);
    const key = join(dir, 'key.pem');
    assert.equal((await alice.kport(['kube', 'ls', '-q'])).exitCode, 0);
    chmodSync(key, 0o644);
    let res = await alice.kport(['kube', 'ls']);
    assert.equal(res.exitCode, 4, String(res.stderr));
    assert.equal(
      String(res.stderr).trim(),
      `ERROR: ${key} can be read by other users (mode 0644), so kport will not use it: run chmod 600 ${key} (and kport login again if anyone may have read it).`,
    );
    chmodSync(key, 0o600);
    for (const open of [home, join(home, 'profiles'), dir]) {
      chmodSync(open, 0o777);
      res = await alice.kport(['kube', 'ls']);
      assert.equal(res.exitCode, 4, `${open}: ${String(res.stderr)}`);
      assert.match(
        String(res.stderr),
        new RegExp(
          `${open.replace(/[.]/g, '\\.')} is writable by other users, .*: run chmod 700 ${open.replace(/[.]/g, '\\.')}, then run the command again\\.`,
        ),
      );
      chmodSync(open, 0o700);
    }
    res = await alice.kport(['kube', 'ls', '-q']);
    assert.equal(res.exitCode, 0, String(res.stderr));
  });
});
