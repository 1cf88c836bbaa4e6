import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ensureAccessEntry, authenticationMode, usesAccessEntries } from '../../src/rbac/access-entry.ts';
import { normalizeRoleArn } from '../../src/rbac/arn.ts';
import { readMapRoles, upsertMapRole } from '../../src/rbac/aws-auth.ts';

// moto does not implement EKS access entries, so their request shapes are checked here against a
// recording client (a unit test of this one module).
function recordingEks(fail: Record<string, Error> = {}, describe: { kubernetesGroups?: string[] } = {}) {
  const calls: Array<{ name: string; input: unknown }> = [];
  return {
    calls,
    send: async (command: { constructor: { name: string }; input: unknown }) => {
      const name = command.constructor.name;
      calls.push({ name, input: command.input });
      if (fail[name]) throw fail[name];
      return name === 'DescribeAccessEntryCommand' ? { accessEntry: describe } : {};
    },
  };
}

test('access entry: created as STANDARD with the groups and no access policy', async () => {
  const eks = recordingEks();
  assert.equal(await ensureAccessEntry(eks as never, { clusterName: 'prod', principalArn: 'arn:aws:iam::1:role/p', groups: ['kport'] }), 'created');
  assert.deepEqual(eks.calls, [
    { name: 'CreateAccessEntryCommand', input: { clusterName: 'prod', principalArn: 'arn:aws:iam::1:role/p', kubernetesGroups: ['kport'], type: 'STANDARD' } },
  ]);
});

test('access entry: an existing one is updated only when its groups differ', async () => {
  const inUse = Object.assign(new Error('exists'), { name: 'ResourceInUseException' });
  const stale = recordingEks({ CreateAccessEntryCommand: inUse }, { kubernetesGroups: ['old'] });
  assert.equal(await ensureAccessEntry(stale as never, { clusterName: 'prod', principalArn: 'arn:aws:iam::1:role/p', groups: ['kport'] }), 'updated');
  assert.deepEqual(
    stale.calls.map((c) => c.name),
    ['CreateAccessEntryCommand', 'DescribeAccessEntryCommand', 'UpdateAccessEntryCommand'],
  );
  assert.deepEqual(stale.calls[2]!.input, { clusterName: 'prod', principalArn: 'arn:aws:iam::1:role/p', kubernetesGroups: ['kport'] });
  const same = recordingEks({ CreateAccessEntryCommand: inUse }, { kubernetesGroups: ['kport'] });
  assert.equal(await ensureAccessEntry(same as never, { clusterName: 'prod', principalArn: 'arn:aws:iam::1:role/p', groups: ['kport'] }), 'unchanged');
  const denied = recordingEks({ CreateAccessEntryCommand: Object.assign(new Error('no'), { name: 'AccessDeniedException' }) });
  await assert.rejects(ensureAccessEntry(denied as never, { clusterName: 'prod', principalArn: 'x', groups: [] }), /no/);
});

test('authentication mode: absent means CONFIG_MAP; API and API_AND_CONFIG_MAP use access entries', () => {
  assert.equal(authenticationMode(undefined), 'CONFIG_MAP');
  assert.equal(authenticationMode({ accessConfig: {} }), 'CONFIG_MAP');
  assert.equal(usesAccessEntries(authenticationMode({ accessConfig: { authenticationMode: 'API' } })), true);
  assert.equal(usesAccessEntries(authenticationMode({ accessConfig: { authenticationMode: 'API_AND_CONFIG_MAP' } })), true);
  assert.equal(usesAccessEntries(authenticationMode({ accessConfig: { authenticationMode: 'CONFIG_MAP' } })), false);
});

test('role ARNs are normalised as aws-iam-authenticator matches them', () => {
  assert.deepEqual(normalizeRoleArn('arn:aws:iam::222222222222:role/kport'), { arn: 'arn:aws:iam::222222222222:role/kport' });
  assert.equal(normalizeRoleArn('arn:aws:sts::222222222222:assumed-role/kport/i-0abc').arn, 'arn:aws:iam::222222222222:role/kport');
  assert.equal(normalizeRoleArn('arn:aws-cn:iam::222222222222:role/a/b/kport').arn, 'arn:aws-cn:iam::222222222222:role/kport');
  assert.throws(() => normalizeRoleArn('arn:aws:iam::222222222222:user/alice'), /IAM user, not a role/);
  assert.throws(() => normalizeRoleArn('kport'), /not an IAM role ARN/);
});

test('mapRoles: appended once, updated in place by ARN case-insensitively, other entries kept', () => {
  const first = upsertMapRole(undefined, { rolearn: 'arn:aws:iam::1:role/p', username: 'kport', groups: ['kport'] });
  assert.equal(first, '- rolearn: arn:aws:iam::1:role/p\n  username: kport\n  groups:\n    - kport\n');
  const withOther = `- rolearn: arn:aws:iam::1:role/node # nodes\n  username: "system:node:{{EC2PrivateDNSName}}"\n  groups: [system:nodes]\n${first}`;
  assert.equal(
    upsertMapRole(withOther, { rolearn: 'arn:aws:iam::1:role/P', username: 'kport', groups: ['kport'] }),
    withOther,
    'unchanged text when nothing changes',
  );
  const updated = upsertMapRole(withOther, { rolearn: 'arn:aws:iam::1:role/p', username: 'kport', groups: ['admins'] });
  assert.ok(updated.startsWith('- rolearn: arn:aws:iam::1:role/node # nodes\n  username: "system:node:{{EC2PrivateDNSName}}"\n  groups: [system:nodes]\n'));
  assert.deepEqual(
    readMapRoles(updated).map((e) => e.groups),
    [['system:nodes'], ['admins']],
  );
  assert.throws(
    () => upsertMapRole('- rolearn: a\n  groups: [x\n', { rolearn: 'arn:aws:iam::1:role/p', username: 'k', groups: [] }),
    /does not parse at line \d+/,
  );
  assert.throws(() => upsertMapRole('rolearn: a\n', { rolearn: 'arn:aws:iam::1:role/p', username: 'k', groups: [] }), /mapRoles is not a list/);
});
