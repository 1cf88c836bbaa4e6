// `kport rbac bootstrap` and `rbac check` against a real kube-apiserver (docs/architecture.md §7).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { kubeconfigYaml, startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { havePeer, tempDir } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const ROLE = 'arn:aws:iam::222222222222:role/kport-proxy';
const SEEDED_MAP_ROLES = `# managed by eksctl and by hand
- rolearn: arn:aws:iam::222222222222:role/eks-node-group-a
  username: system:node:{{EC2PrivateDNSName}}
  groups:
    - system:bootstrappers
    - system:nodes
- rolearn: arn:aws:iam::222222222222:role/AWSReservedSSO_Admin_0123
  username: sso-admin:{{SessionName}}
  groups: [admins]
  sso:
    permissionSetName: Admin
    accountID: "222222222222"
`;
const SEEDED = {
  mapRoles: SEEDED_MAP_ROLES,
  mapUsers: '- userarn: arn:aws:iam::222222222222:user/alice\n  username: alice\n  groups: [devs]\n',
  mapAccounts: '- "333333333333"\n',
  extraKey: 'keep me',
};

describe('rbac bootstrap and check against kube-apiserver', { concurrency: false, timeout: 300_000 }, () => {
  let api: KubeApiserver;
  let kubeconfig: string;
  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.etcd()])) return;
    api = await startKubeApiserver();
    // One kubeconfig with an admin context and the proxy's own, as a platform engineer would have.
    const dir = tempDir('rbac');
    kubeconfig = join(dir, 'config');
    const admin = { ...(await import('yaml')).parse(kubeconfigYaml(api.server, api.caPem, api.admin, 'test')) };
    const proxy = (await import('yaml')).parse(kubeconfigYaml(api.server, api.caPem, api.proxy, 'proxy'));
    writeFileSync(
      kubeconfig,
      stringify({
        ...admin,
        clusters: [...admin.clusters, ...proxy.clusters],
        users: [...admin.users, ...proxy.users],
        contexts: [...admin.contexts, ...proxy.contexts],
      }),
    );
  });
  after(() => api?.stop());

  const kport = (args: string[]) =>
    execa(process.execPath, [KPORT_BIN, ...args], {
      env: { KUBECONFIG: kubeconfig, HOME: tempDir('home'), PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
  const awsAuth = async () => (await api.request(api.admin, '/api/v1/namespaces/kube-system/configmaps/aws-auth')).body;
  const seed = async (data: Record<string, string> | undefined) => {
    await api.request(api.admin, '/api/v1/namespaces/kube-system/configmaps/aws-auth', { method: 'DELETE' });
    for (const path of ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kport', '/apis/rbac.authorization.k8s.io/v1/clusterroles/kport']) {
      await api.request(api.admin, path, { method: 'DELETE' });
    }
    if (data) {
      const res = await api.request(api.admin, '/api/v1/namespaces/kube-system/configmaps', {
        method: 'POST',
        body: { metadata: { name: 'aws-auth', namespace: 'kube-system' }, data },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
  };
  beforeEach(async () => {
    if (api) await seed(SEEDED);
  });

  test('bootstrap keeps every existing entry, key and comment, adds the role once; a second run is a no-op; rbac check passes after and not before', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const before = await kport(['rbac', 'check', '--context', 'proxy']);
    assert.equal(before.exitCode, 1);
    assert.match(String(before.stdout), /✗ impersonate users\n/);
    assert.match(
      String(before.stdout),
      /✗ impersonate userextras\.authentication\.k8s\.io\/kport\.dev\/original-user\n✗ impersonate userextras\.authentication\.k8s\.io\/kport\.dev\/session-id\n/,
    );
    // Every authenticated user may review itself (system:basic-user); the rest is missing.
    assert.match(String(before.stdout), /✓ create selfsubjectaccessreviews\.authorization\.k8s\.io\n/);
    assert.match(
      String(before.stderr),
      /The proxy identity lacks impersonate users, impersonate groups, impersonate serviceaccounts, impersonate userextras\.authentication\.k8s\.io\/kport\.dev\/original-user, impersonate userextras\.authentication\.k8s\.io\/kport\.dev\/session-id, get pods: run `kport rbac bootstrap --context proxy --role-arn/,
    );

    const run = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE]);
    assert.equal(run.exitCode, 0, String(run.stderr));
    assert.equal(String(run.stdout), 'ClusterRole kport: created\nClusterRoleBinding kport: created\nConfigMap kube-system/aws-auth (mapRoles): updated');
    const cm = await awsAuth();
    assert.equal(cm.data.mapUsers, SEEDED.mapUsers);
    assert.equal(cm.data.mapAccounts, SEEDED.mapAccounts);
    assert.equal(cm.data.extraKey, 'keep me');
    assert.ok(cm.data.mapRoles.startsWith(SEEDED_MAP_ROLES), `existing entries, sso keys and the comment are kept verbatim:\n${cm.data.mapRoles}`);
    assert.equal(cm.data.mapRoles.slice(SEEDED_MAP_ROLES.length), `- rolearn: ${ROLE}\n  username: kport\n  groups:\n    - kport\n`);

    const again = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/KPORT-Proxy']);
    assert.equal(
      String(again.stdout),
      'ClusterRole kport: unchanged\nClusterRoleBinding kport: unchanged\nConfigMap kube-system/aws-auth (mapRoles): unchanged',
    );
    assert.equal((await awsAuth()).metadata.resourceVersion, cm.metadata.resourceVersion, 'nothing was written');

    const after = await kport(['rbac', 'check', '--context', 'proxy']);
    assert.equal(after.exitCode, 0, String(after.stderr));
    assert.equal(
      String(after.stdout)
        .split('\n')
        .filter((l) => l.startsWith('✓')).length,
      8,
    );
    assert.match(String(after.stdout), /✓ impersonate userextras\.authentication\.k8s\.io\/kport\.dev\/session-id\n/);
    const asRole = await kport(['rbac', 'check', '--context', 'test', '--as-role-arn', 'arn:aws:sts::222222222222:assumed-role/kport-proxy/session-1']);
    assert.equal(asRole.exitCode, 0, String(asRole.stderr));
  });

  test('an assumed-role or role-with-path ARN is normalised, and the normalisation printed', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const run = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/teams/platform/kport-proxy']);
    assert.equal(run.exitCode, 0, String(run.stderr));
    assert.match(
      String(run.stderr),
      /role path dropped: aws-iam-authenticator matches arn:aws:iam::222222222222:role\/teams\/platform\/kport-proxy as arn:aws:iam::222222222222:role\/kport-proxy/,
    );
    assert.match((await awsAuth()).data.mapRoles, /- rolearn: arn:aws:iam::222222222222:role\/kport-proxy\n/);
    const user = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:user/alice']);
    assert.equal(user.exitCode, 2);
    assert.match(String(user.stderr), /is an IAM user, not a role/);
  });

  test('--existing-group maps into that group and warns when nothing binds it; --system-masters needs --yes', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const existing = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE, '--existing-group', 'platform-proxies']);
    assert.equal(existing.exitCode, 0, String(existing.stderr));
    assert.equal(String(existing.stdout), 'ConfigMap kube-system/aws-auth (mapRoles): updated');
    assert.match(String(existing.stderr), /no ClusterRoleBinding or RoleBinding references group "platform-proxies"/);
    assert.match((await awsAuth()).data.mapRoles, /username: kport\n {2}groups:\n {4}- platform-proxies\n$/);
    assert.equal((await api.request(api.admin, '/apis/rbac.authorization.k8s.io/v1/clusterroles/kport')).status, 404);

    const before = await awsAuth();
    const refused = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE, '--system-masters']);
    assert.equal(refused.exitCode, 2);
    assert.match(String(refused.stderr), /cluster-admin[\s\S]*pass --yes instead/);
    assert.equal((await awsAuth()).metadata.resourceVersion, before.metadata.resourceVersion, 'nothing written');
    const yes = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE, '--system-masters', '--yes']);
    assert.equal(yes.exitCode, 0, String(yes.stderr));
    const roles = (await awsAuth()).data.mapRoles as string;
    assert.equal(roles.split(ROLE).length - 1, 1, 'updated in place, not duplicated');
    assert.match(roles, /groups:\n {4}- system:masters\n$/);
  });

  test('--dry-run prints a unified diff and writes nothing; --format json prints the plan', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const before = await awsAuth();
    const dry = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE, '--dry-run']);
    assert.equal(dry.exitCode, 0, String(dry.stderr));
    assert.match(String(dry.stdout), /^--- ClusterRole kport \(cluster\)\n\+\+\+ ClusterRole kport \(desired\)\n/m);
    assert.match(String(dry.stdout), /\+ {2}- apiGroups:\n\+ {6}- ""\n\+ {4}resources:\n\+ {6}- users/);
    assert.match(String(dry.stdout), /\+- rolearn: arn:aws:iam::222222222222:role\/kport-proxy\n\+ {2}username: kport/);
    assert.match(String(dry.stderr), /Dry run: nothing was written/);
    assert.equal((await awsAuth()).metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal((await api.request(api.admin, '/apis/rbac.authorization.k8s.io/v1/clusterroles/kport')).status, 404);
    const plan = JSON.parse(String((await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE, '--dry-run', '--format', 'json'])).stdout));
    assert.deepEqual(
      plan.steps.map((s: { object: string; action: string }) => `${s.object}=${s.action}`),
      ['ClusterRole kport=create', 'ClusterRoleBinding kport=create', 'ConfigMap kube-system/aws-auth (mapRoles)=update'],
    );
  });

  test('a malformed mapRoles is refused with the wrong line and left byte-identical', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const broken = '- rolearn: arn:aws:iam::222222222222:role/a\n  username: a\n  groups: [x\n- rolearn: b\n';
    await seed({ mapRoles: broken, other: 'x' });
    const before = await awsAuth();
    const run = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE]);
    assert.equal(run.exitCode, 1);
    assert.match(String(run.stderr), /aws-auth mapRoles does not parse at line \d+ \(".*"\): .*nothing was written/);
    const after = await awsAuth();
    assert.equal(after.data.mapRoles, broken);
    assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  test('a missing aws-auth is created', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    await seed(undefined);
    const run = await kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', ROLE]);
    assert.equal(run.exitCode, 0, String(run.stderr));
    assert.match(String(run.stdout), /ConfigMap kube-system\/aws-auth \(mapRoles\): created/);
    assert.deepEqual((await awsAuth()).data, { mapRoles: `- rolearn: ${ROLE}\n  username: kport\n  groups:\n    - kport\n` });
  });

  test('concurrent edits of aws-auth between read and write are merged, not lost', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    let stop = false;
    let writes = 0;
    const path = '/api/v1/namespaces/kube-system/configmaps/aws-auth';
    // Another tool rewriting aws-auth as fast as it can, each time with a new mapUsers entry.
    const editor = (async () => {
      while (!stop) {
        const cm = (await api.request(api.admin, path)).body;
        cm.data.mapUsers = `${cm.data.mapUsers}- userarn: arn:aws:iam::222222222222:user/u${writes}\n  username: u${writes}\n`;
        if ((await api.request(api.admin, path, { method: 'PUT', body: cm })).status === 200) writes++;
        await sleep(15);
      }
    })();
    const runs = await Promise.all(
      ['a', 'b', 'c'].map((n) => kport(['rbac', 'bootstrap', '--context', 'test', '--role-arn', `arn:aws:iam::222222222222:role/proxy-${n}`, '--debug'])),
    );
    stop = true;
    await editor;
    for (const r of runs) assert.equal(r.exitCode, 0, String(r.stderr));
    const cm = await awsAuth();
    for (const n of ['a', 'b', 'c']) assert.match(cm.data.mapRoles, new RegExp(`role/proxy-${n}\\n`));
    for (let i = 0; i < writes; i++) assert.ok(cm.data.mapUsers.includes(`user/u${i}\n`), `editor write ${i} kept`);
    assert.ok(cm.data.mapRoles.startsWith(SEEDED_MAP_ROLES));
    const retried = runs.filter((r) => /changed after we read it; merging again/.test(String(r.stderr))).length;
    t.diagnostic(`editor wrote ${writes} times; ${retried} of 3 bootstraps hit a 409 and merged again`);
  });
});
