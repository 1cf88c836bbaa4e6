// Roles in Teleport's shape through the built CLI in local mode (issue 20): create -f, deny wins in
// kube ls, get -o yaml reads back, built-in names cannot be taken.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { tempHome } from '../helpers/run.ts';

const bin = fileURLToPath(new URL('../../bin/kport.js', import.meta.url));

function setup() {
  const home = tempHome();
  const config = join(home, 'kport.yaml');
  writeFileSync(config, stringify({ version: 'v3', teleport: { data_dir: join(home, 'data') } }));
  const env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: config, KUBECONFIG: join(home, 'kubeconfig') };
  const kport = (args: string[], input?: string) =>
    execa(process.execPath, [bin, ...args], { cwd: home, env, extendEnv: false, reject: false, ...(input !== undefined && { input }) });
  return { home, config, kport };
}

const cluster = (name: string, labels: Record<string, string>) => ({
  kind: 'kube_cluster',
  version: 'v3',
  metadata: { name, labels },
  spec: { aws: { name, region: 'us-east-1', account_id: '222222222222' } },
});

/** The roles `get role -o json` lists besides the built-in ones (marked kport.dev/origin: builtin). */
const storedRoles = (json: string) =>
  (JSON.parse(json) as Array<{ metadata: { labels?: Record<string, string> } }>).filter((r) => r.metadata.labels?.['kport.dev/origin'] !== 'builtin');

test('a Teleport-shape role with a deny: kube ls shows exactly the allowed clusters', async () => {
  const { home, kport } = setup();
  const file = join(home, 'setup.yaml');
  writeFileSync(
    file,
    [
      `kind: role
version: v7
metadata:
  name: payments
spec:
  allow:
    kubernetes_labels:
      team: 'pay*'
    kubernetes_groups: [payments]
  deny:
    kubernetes_labels:
      env: prod
  options:
    max_session_ttl: 8h
`,
      stringify({ kind: 'user', metadata: { name: 'bob' }, spec: { roles: ['payments'] } }),
      stringify(cluster('pay-dev', { team: 'payments', env: 'dev' })),
      stringify(cluster('pay-prod', { team: 'payments', env: 'prod' })),
      stringify(cluster('web-dev', { team: 'web', env: 'dev' })),
    ].join('---\n'),
  );
  const created = await kport(['create', '-f', file]);
  assert.equal(created.exitCode, 0, String(created.stderr));
  const ls = await kport(['kube', 'ls', '--user', 'bob', '-o', 'json']);
  assert.equal(ls.exitCode, 0, String(ls.stderr));
  assert.deepEqual(
    JSON.parse(String(ls.stdout)).map((c: { kube_cluster_name: string }) => c.kube_cluster_name),
    ['pay-dev'],
  );

  // get -o yaml prints Teleport's shape, which create -f reads back to the same role.
  const yaml = await kport(['get', 'role/payments', '-o', 'yaml']);
  assert.equal(yaml.exitCode, 0, String(yaml.stderr));
  assert.match(String(yaml.stdout), /version: v7/);
  const again = await kport(['create', '-f', '-', '--force'], String(yaml.stdout));
  assert.equal(again.exitCode, 0, String(again.stderr));
  assert.equal(String((await kport(['get', 'role/payments', '-o', 'yaml'])).stdout), String(yaml.stdout));
  const table = String((await kport(['get', 'role'])).stdout);
  assert.match(table, /payments\tteam=pay\*\tpayments\t\t\tlabels env=prod/);
});

test('built-in role names cannot be taken, and roles kport cannot honour are refused with nothing written', async () => {
  const { home, config, kport } = setup();
  const file = join(home, 'editor.yaml');
  writeFileSync(file, 'kind: role\nversion: v7\nmetadata: { name: editor }\nspec:\n  allow:\n    kubernetes_labels: { "*": "*" }\n');
  const refused = await kport(['create', '-f', file]);
  assert.equal(refused.exitCode, 2);
  assert.match(String(refused.stderr), /metadata\.name: editor is a built-in kport role and cannot be redefined: give yours another name/);
  writeFileSync(
    file,
    'kind: role\nversion: v7\nmetadata: { name: pods }\nspec:\n  allow:\n    kubernetes_labels: { "*": "*" }\n    kubernetes_resources: [{ kind: pod, namespace: prod, name: "*" }]\n',
  );
  assert.match(String((await kport(['create', '-f', file])).stderr), /spec\.allow\.kubernetes_resources: kport does not narrow access inside a cluster/);
  assert.deepEqual(storedRoles(String((await kport(['get', 'role', '-o', 'json'])).stdout)), []);
  writeFileSync(
    config,
    stringify({ version: 'v3', teleport: { data_dir: join(home, 'data') }, roles: [{ name: 'access', kubernetes_labels: { env: 'dev' } }] }),
  );
  const conf = await kport(['get', 'role']);
  assert.equal(conf.exitCode, 2);
  assert.match(String(conf.stderr), /roles\[0\]\.name \(line 5\): access is a built-in kport role and cannot be redefined/);
});

test('built-in role names are reserved whatever their case: a role Editor, a config role ACCESS, users named editor are refused', async () => {
  const { home, config, kport } = setup();
  const file = join(home, 'Editor.yaml');
  writeFileSync(file, 'kind: role\nversion: v7\nmetadata: { name: Editor }\nspec:\n  allow:\n    rules: [{ resources: ["*"], verbs: ["*"] }]\n');
  const refused = await kport(['create', '-f', file]);
  assert.equal(refused.exitCode, 2, String(refused.stderr));
  assert.match(
    String(refused.stderr),
    /metadata\.name: Editor is a built-in kport role \(editor, in another case\) and cannot be redefined: give yours another name/,
  );
  writeFileSync(file, 'kind: user\nversion: v2\nmetadata: { name: Editor }\nspec: { roles: [access] }\n');
  assert.match(String((await kport(['create', '-f', file])).stderr), /Editor reads as the built-in role editor, so no user may be named so: pick another name/);
  assert.deepEqual(storedRoles(String((await kport(['get', 'role', '-o', 'json'])).stdout)), []);
  assert.equal(String((await kport(['get', 'user', '-o', 'json'])).stdout), '[]');
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(home, 'data') },
      roles: [{ name: 'ACCESS', kubernetes_labels: { env: 'dev' } }],
      users: [{ name: 'auditor', roles: ['access'] }],
    }),
  );
  const conf = await kport(['get', 'role']);
  assert.equal(conf.exitCode, 2);
  assert.match(String(conf.stderr), /ACCESS is a built-in kport role \(access, in another case\) and cannot be redefined/);
  assert.match(String(conf.stderr), /auditor reads as the built-in role auditor, so no user may be named so/);
});

test('in local mode create -f writes a user with the claim on its name: another case of it is refused, and rm user/NAME frees it', async () => {
  const { home, kport } = setup();
  const file = join(home, 'users.yaml');
  const user = (name: string) => stringify({ kind: 'user', version: 'v2', metadata: { name }, spec: { roles: ['access'] } });
  writeFileSync(file, user('bob'));
  assert.equal((await kport(['create', '-f', file])).exitCode, 0);
  for (const [text, force] of [
    [user('Bob'), []],
    [user('BOB'), ['--force']],
    [`${user('carol')}---\n${user('Carol')}`, []],
  ] as const) {
    writeFileSync(file, text);
    const res = await kport(['create', '-f', file, ...force]);
    assert.equal(res.exitCode, 1, String(res.stdout));
    assert.match(
      String(res.stderr),
      /user "(Bob|BOB|Carol)" is refused: a user named (bob|carol) exists, and user names differ in more than case: pick another name, or remove (bob|carol) first \(kport rm user\/(bob|carol)\)\. Nothing was written\./,
    );
  }
  const names = async () =>
    (JSON.parse(String((await kport(['get', 'user', '-o', 'json'])).stdout)) as Array<{ metadata: { name: string } }>).map((u) => u.metadata.name);
  assert.deepEqual(await names(), ['bob']);
  const rm = await kport(['rm', 'user/bob']);
  assert.equal(rm.exitCode, 0, String(rm.stderr));
  writeFileSync(file, user('Bob'));
  const again = await kport(['create', '-f', file]);
  assert.equal(again.exitCode, 0, String(again.stderr));
  assert.deepEqual(await names(), ['Bob']);
});
