// `kport login --auth oidc --browser none` end to end: the built CLI against a real `kport server
// start` configured for OIDC and oidc-provider run as a test peer. The test plays the person: it
// reads the URL the CLI prints and drives the provider's own login and consent pages with plain
// HTTP (test/helpers/browser.ts), which ends at the CLI's loopback listener.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { Browser } from '../helpers/browser.ts';
import { person } from '../helpers/login.ts';
import { pinnedCa, startServer, type TestServer } from '../helpers/network.ts';
import { eksCluster as cluster } from '../helpers/resources.ts';
import { freePort, waitFor } from '../peers/process.ts';
import { oidcAuthentication, startOidcProvider, type OidcPeer } from '../peers/oidc.ts';

describe('kport login --auth oidc --browser none through the CLI', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let idp: OidcPeer;
  let serverCa: string;

  before(async () => {
    const port = await freePort();
    idp = await startOidcProvider({ redirectUris: [`https://127.0.0.1:${port}/v1/login/oidc/callback`] });
    server = await startServer({
      port,
      auth: {
        authentication: {
          ...oidcAuthentication(idp),
          scope: ['groups'],
          claims_to_roles: [
            { claim: 'groups', value: 'dev', roles: ['dev-access'] },
            { claim: 'groups', value: '^op[a-z]*$', roles: ['editor', 'auditor'] },
          ],
        },
      },
    });
    const setup = join(server.dir, 'setup.yaml');
    writeFileSync(
      setup,
      [
        stringify({
          kind: 'role',
          version: 'v7',
          metadata: { name: 'dev-access' },
          spec: {
            allow: { kubernetes_labels: { env: ['dev', 'staging'] }, kubernetes_groups: ['developers'] },
            deny: { kubernetes_labels: { team: 'payments' } },
          },
        }),
        stringify(cluster('dev-a', { env: 'dev' })),
        stringify(cluster('dev-pay', { env: 'dev', team: 'payments' })),
        stringify(cluster('staging-a', { env: 'staging' })),
        stringify(cluster('prod-a', { env: 'prod' })),
      ].join('---\n'),
    );
    const res = await server.kport(['create', '-f', setup]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    serverCa = await pinnedCa(server);
  });
  after(async () => {
    await server?.stop();
    await idp?.stop();
  });

  /** kport login --auth oidc --browser none as `login`: the URL read from the CLI's output, signed in at the provider, the CLI's answer. */
  async function cliLogin(login: string) {
    const p = person();
    const proc = execa(process.execPath, [KPORT_BIN, 'login', '--proxy', server.address, '--ca-pin', server.pin, '--auth', 'oidc', '--browser', 'none'], {
      cwd: p.home,
      env: { HOME: p.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
    });
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c));
    let exited = false;
    void proc.finally(() => (exited = true));
    const url = await waitFor(
      'the login URL',
      async () => /Open this URL in a browser on this machine to log in:\n {2}(https:\/\/\S+)\n/.exec(stderr)?.[1] ?? (exited ? 'exited' : undefined),
      { timeoutMs: 30_000 },
    );
    assert.notEqual(url, 'exited', stderr);
    assert.ok(url.startsWith(`${idp.issuer}/`), `the URL is the provider's: ${url}`);
    const browser = new Browser([idp.caPem, serverCa]);
    let page: { status: number; body: string };
    try {
      page = (await browser.signIn(url, login)).last;
    } finally {
      await browser.close();
    }
    const res = await proc;
    return { person: p, res, stderr, page, visited: browser.visited };
  }

  test('alice (groups: dev) logs in; status shows her and the role her group maps to; kube ls through the server shows exactly the clusters that role allows', async () => {
    const { person: alice, res, stderr, page, visited } = await cliLogin('alice');
    assert.equal(res.exitCode, 0, stderr);
    assert.equal(page.status, 200, `the browser ends at the CLI's listener: ${visited.join('\n')}`);
    assert.match(page.body, /Logged in/);
    assert.ok(
      visited.some((u) => u.startsWith(`https://${server.address}/v1/login/oidc/callback?`)),
      "through the server's callback",
    );
    assert.match(String(res.stdout), new RegExp(`^Logged in as alice \\(roles: dev-access\\) at ${server.address.replace(/\./g, '\\.')} until \\d{4}-`));

    let out = await alice.kport(['status']);
    assert.equal(out.exitCode, 0, String(out.stderr));
    assert.match(String(out.stdout), /User: +alice\nRoles: +dev-access\n/);
    assert.match(String(out.stdout), new RegExp(`Commands: +run through the server at ${server.address.replace(/\./g, '\\.')}`));

    out = await alice.kport(['kube', 'ls', '-o', 'json']);
    assert.equal(out.exitCode, 0, String(out.stderr));
    assert.deepEqual(
      JSON.parse(String(out.stdout)).map((c: { kube_cluster_name: string }) => c.kube_cluster_name),
      ['dev-a', 'staging-a'],
    );
  });

  test('bob (groups: ops, matched by ^regex$) gets editor and auditor: he reads every kube_cluster record, and kube ls (Kubernetes access, which neither role grants) shows none', async () => {
    const { person: bob, res, stderr } = await cliLogin('bob');
    assert.equal(res.exitCode, 0, stderr);
    const out = await bob.kport(['status']);
    assert.match(String(out.stdout), /User: +bob\nRoles: +editor, auditor\n/);
    const ls = await bob.kport(['kube', 'ls', '-o', 'json']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));
    assert.deepEqual(JSON.parse(String(ls.stdout)), []);
    const get = await bob.kport(['get', 'kube_cluster', '-o', 'json']);
    assert.equal(get.exitCode, 0, String(get.stderr));
    assert.deepEqual(
      JSON.parse(String(get.stdout))
        .map((c: { metadata: { name: string } }) => c.metadata.name)
        .sort(),
      ['dev-a', 'dev-pay', 'prod-a', 'staging-a'],
    );
  });

  test('carol (groups: [], maps to no role): the CLI prints the one refusal sentence naming the claims it saw, exits non-zero, and keeps no profile', async () => {
    const { person: carol, res, stderr, page } = await cliLogin('carol');
    assert.notEqual(res.exitCode, 0);
    assert.equal(page.status, 403);
    const lines = stderr.trim().split('\n');
    const last = lines.at(-1)!;
    assert.match(
      last,
      /^ERROR: .*no claims_to_roles entry matches the claims the identity provider sent for carol \(groups: \[\]; claims seen: [^)]*\bgroups\b[^)]*\): an administrator maps one of them to a role in auth_service\.authentication\.claims_to_roles\.$/,
    );
    assert.equal(lines.filter((l) => /claims_to_roles/.test(l)).length, 1, 'one sentence');
    const status = await carol.kport(['status']);
    assert.match(String(status.stdout), /Commands: +run locally: no profile/);
  });

  test('a locked OIDC person removed with users rm is still locked when they come back through the provider; users unlock lets them in', async () => {
    const first = await cliLogin('alice');
    assert.equal(first.res.exitCode, 0, first.stderr);
    for (const args of [
      ['users', 'lock', 'alice', '--message', 'left the company'],
      ['users', 'rm', 'alice'],
    ]) {
      const res = await server.kport(args);
      assert.equal(res.exitCode, 0, String(res.stderr));
    }
    const locks = await server.kport(['get', 'lock', '-o', 'json']);
    assert.deepEqual(
      JSON.parse(String(locks.stdout)).map((l: { spec: { user: string } }) => l.spec.user),
      ['alice'],
      'the lock outlives the user record',
    );
    const back = await cliLogin('alice');
    assert.notEqual(back.res.exitCode, 0, 'the provider vouches for alice, the lock still refuses her');
    assert.match(back.stderr, /alice is locked \(left the company\)/);
    assert.equal((await server.kport(['users', 'unlock', 'alice'])).exitCode, 0);
    const unlocked = await cliLogin('alice');
    assert.equal(unlocked.res.exitCode, 0, unlocked.stderr);
  });
});
