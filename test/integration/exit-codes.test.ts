// README "Exit codes": one code per kind of failure, the same on the store (the server's host, -c)
// and through a server (a logged-in person): a thing that does not exist is 1, input that is not what
// it must be is 2, credentials (a role that does not allow it, an expired login) are 4. Every
// command's not-found and bad-input case, both ways; in-process, against a real `kport server start`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { runKport } from '../helpers/run.ts';

// users lock of a name no user has is not a failure: the lock waits for whoever takes that name (README).
const NOT_FOUND: string[][] = [
  ['tokens', 'rm', 'tok-0000000000000000'],
  ['users', 'rm', 'nosuch'],
  ['users', 'unlock', 'nosuch'],
  ['agents', 'rm', 'nosuch'],
  ['kube', 'login', 'nosuch'],
  ['get', 'kube_cluster/nosuch'],
  ['get', 'role/nosuch'],
  ['get', 'user/nosuch'],
  ['get', 'token/nosuch'],
  ['get', 'agent/nosuch'],
  ['rm', 'kube_cluster/nosuch'],
  ['rm', 'role/nosuch'],
  ['rm', 'user/nosuch'],
  ['rm', 'agent/nosuch'],
  ['rm', 'token/nosuch'],
  ['play', 'nosuch'],
  ['rbac', 'check', '--cluster', 'nosuch'],
];

const BAD_INPUT: string[][] = [
  ['nosuch'],
  ['users', 'nosuch'],
  ['status', 'extra'],
  ['tokens', 'add', '--type=nope'],
  ['tokens', 'add', '--type=discovery', '--ttl', 'x'],
  ['tokens', 'add', '--type=discovery', '--labels', 'bad'],
  ['tokens', 'add', '--type=discovery', '--uses', '-1'],
  ['users', 'add', 'bad name', '--roles', 'access'],
  ['users', 'add', 'bob', '--roles', 'nosuchrole'],
  ['users', 'add', 'bob', '--roles', 'bad role!'],
  ['users', 'add', 'bob', '--roles', 'access', '--invite-ttl', '100h'],
  ['users', 'rm', 'bad name!'],
  ['users', 'lock', 'bad name!'],
  ['users', 'lock', 'alice', '--ttl', 'x'],
  ['users', 'unlock', 'bad name!'],
  ['agents', 'rm', 'bad name!'],
  ['get', 'nosuchkind'],
  ['get', 'kube_cluster/bad name!'],
  ['get', 'kube_cluster', '--since', '1h'],
  ['get', 'audit', '--since', 'bad'],
  ['rm', 'nosuchkind/x'],
  ['rm', 'kube_cluster/bad name!'],
  ['rm', 'kube_cluster'],
  ['create', '-f', '/nonexistent/kport.yaml'],
  ['kube', 'ls', 'bad label'],
  ['kube', 'login', 'bad name!'],
  ['kube', 'login', 'x', '--port', 'abc'],
  ['play', 'bad name!'],
  ['play', '../../etc/passwd'],
  ['play', 'x', '--speed', 'abc'],
  ['rbac', 'check', '--cluster', 'bad name!'],
  ['completion', 'nosh'],
];

describe('exit codes: one per kind of failure, on the store and through a server alike', { timeout: 300_000 }, () => {
  let server: TestServer;
  let alice: Person;
  let local: (args: string[]) => ReturnType<typeof runKport>;
  let remote: (args: string[]) => ReturnType<typeof runKport>;
  before(async () => {
    server = await startServer();
    alice = await invitedPerson(server, 'alice', ['editor', 'auditor']);
    // On the server's host, with its config: the store itself.
    const config = join(server.dir, 'kport.yaml');
    local = (args) => runKport(['-c', config, ...args], { cwd: server.dir, env: { HOME: server.dir } });
    remote = (args) => runKport(args, { cwd: alice.home, env: { HOME: alice.home } });
  });
  after(() => server?.stop());

  for (const [kind, cases, code] of [
    ['not found', NOT_FOUND, 1],
    ['bad input', BAD_INPUT, 2],
  ] as const) {
    test(`${kind}: exit ${code}, one sentence, on the store and through the server`, async () => {
      for (const args of cases) {
        for (const [where, run] of [
          ['on the store', local],
          ['through the server', remote],
        ] as const) {
          const res = await run(args);
          const what = `kport ${args.join(' ')} ${where}: ${res.stderr}`;
          assert.equal(res.code, code, what);
          assert.match(res.stderr, /^ERROR: \S/, what);
          assert.doesNotMatch(res.stderr, /bug in kport|kport server at \S+ refused:/, what);
          assert.equal(res.stdout, '', what);
        }
      }
    });
  }

  test("credentials: a role that does not allow the call is 4 through the server, with the server's sentence", async () => {
    const bob = await invitedPerson(server, 'bob', ['access']);
    for (const args of [
      ['users', 'rm', 'alice'],
      ['users', 'add', 'carol', '--roles', 'access'],
      ['tokens', 'ls'],
      ['get', 'audit'],
      ['play', 'nosuch'],
      ['agents', 'ls'],
    ]) {
      const res = await runKport(args, { cwd: bob.home, env: { HOME: bob.home } });
      assert.equal(res.code, 4, `kport ${args.join(' ')}: ${res.stderr}`);
      assert.match(
        res.stderr,
        new RegExp(`^ERROR: The kport server at ${server.address.replace(/\./g, '\\.')} refused: user bob \\(access\\) may not `),
        args.join(' '),
      );
    }
  });
});
