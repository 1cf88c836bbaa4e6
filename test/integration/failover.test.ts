// Distributed discovery on a 3-node etcd: one leader per group, failover without loss (issue 7).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CreateClusterCommand, DeleteClusterCommand } from '@aws-sdk/client-eks';
import { createClusters, eksAdmin } from '../peers/aws.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { kubeClusters } from '../helpers/agent.ts';
import { serviceStatus, startFleetAgent, waitForLeader, type FleetAgent } from '../helpers/fleet.ts';

const OWN = '123456789012';

describe('three agents in one group and one in another, on a 3-node etcd', { concurrency: false, timeout: 600_000 }, () => {
  let moto: Moto;
  let etcd: EtcdCluster;
  const agents: FleetAgent[] = [];
  before(async (t) => {
    if (!havePeer(t as never, 'etcd and moto', [BINARIES.etcd(), BINARIES.motoServer()])) return;
    [moto, etcd] = await Promise.all([startMoto(), startEtcd({ members: 3 })]);
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const a of agents) process.stderr.write(`--- ${a.name}\n${a.log.split('\n').slice(-15).join('\n')}\n`);
    for (const a of agents) a.proc?.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.proc?.catch(() => undefined)));
    await Promise.all([moto?.stop(), etcd?.stop()]);
  });

  test('the leader killed mid-poll is replaced within 2x the lease TTL; nothing lost, duplicated or crossed between groups; reads survive a member down', async (t) => {
    if (!havePeer(t, 'etcd and moto', [BINARIES.etcd(), BINARIES.motoServer()])) return;
    const prod = Array.from({ length: 40 }, (_, i) => ({ name: `p${i}`, region: i % 2 ? 'us-east-1' : 'eu-west-1', tags: { env: 'prod' } }));
    const staging = Array.from({ length: 5 }, (_, i) => ({ name: `s${i}`, region: 'us-east-1', tags: { env: 'staging' } }));
    await createClusters(moto, [...prod, ...staging]);
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: `/kport-${randomUUID()}` };
    const prodMatcher = [{ types: ['eks'], regions: ['us-east-1', 'eu-west-1'], tags: { env: 'prod' } }];
    const leaseTtl = 2000;
    for (const name of ['a1', 'a2', 'a3']) agents.push(await startFleetAgent(moto, { name, group: 'prod', storage, matchers: prodMatcher, leaseTtl: '2s' }));
    const other = await startFleetAgent(moto, {
      name: 'b1',
      group: 'staging',
      storage,
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'staging' } }],
      leaseTtl: '2s',
    });
    agents.push(other);
    const group = agents.slice(0, 3);
    const expected = (names: string[]) =>
      names.map((n) => `${n}-eks-${Number(n.slice(1)) % 2 && n.startsWith('p') ? 'us-east-1' : n.startsWith('s') ? 'us-east-1' : 'eu-west-1'}-${OWN}`).sort();
    const current = async () => (await kubeClusters(other.setup)).map((c) => c.metadata.name).sort();
    let want = expected([...prod.map((c) => c.name), ...staging.map((c) => c.name)]);
    await waitFor('the first polls of both groups', async () => JSON.stringify(await current()) === JSON.stringify(want), { timeoutMs: 60_000 });

    const leader = await waitForLeader(group, 'prod');
    const statuses = await serviceStatus(other.setup);
    assert.deepEqual(
      statuses
        .filter((s) => s.spec.discovery_group === 'prod')
        .map((s) => s.spec.state)
        .sort(),
      ['leader', 'standby', 'standby'],
    );
    assert.equal(statuses.find((s) => s.spec.discovery_group === 'staging')?.spec.state, 'leader');

    // AWS changes; the leader is killed as its next poll starts.
    const east = await eksAdmin(moto, 'us-east-1');
    await east.send(new DeleteClusterCommand({ name: 'p1' }));
    await east.send(new CreateClusterCommand({ name: 'p-new', roleArn: `arn:aws:iam::${OWN}:role/eks`, resourcesVpcConfig: {}, tags: { env: 'prod' } }));
    const polls = (leader.log.match(/poll started/g) ?? []).length;
    await waitFor('the leader to start a poll', async () => (leader.log.match(/poll started/g) ?? []).length > polls, { timeoutMs: 10_000 });
    leader.proc!.kill('SIGKILL');
    const killedAt = Date.now();
    const successor = await waitForLeader(group, 'prod', { not: leader, timeoutMs: 20_000 });
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`failover took ${failoverMs} ms with a ${leaseTtl} ms lease`);
    assert.notEqual(successor, leader);
    assert.ok(failoverMs <= 2 * leaseTtl + 500, `failover in ${failoverMs} ms`);
    want = [...want.filter((n) => !n.startsWith('p1-')), `p-new-eks-us-east-1-${OWN}`].sort();
    await waitFor('the successor to reconcile', async () => JSON.stringify(await current()) === JSON.stringify(want), { timeoutMs: 20_000 });
    const labels = await kubeClusters(other.setup);
    assert.equal(
      labels.filter((c) => c.metadata.labels['kport.internal/discovery-group-name'] === 'staging').length,
      5,
      "the other group's resources are untouched",
    );

    // A paused leader loses its lease; when it wakes up it must not write.
    successor.proc!.kill('SIGSTOP');
    await waitForLeader(group, 'prod', { not: successor, timeoutMs: 20_000 });
    await east.send(new DeleteClusterCommand({ name: 'p3' }));
    want = want.filter((n) => !n.startsWith('p3-'));
    await waitFor('the third leader to reconcile', async () => JSON.stringify(await current()) === JSON.stringify(want), { timeoutMs: 20_000 });
    successor.proc!.kill('SIGCONT');
    await waitFor(
      'the woken agent to step down',
      async () =>
        /standby/.test(
          successor.log
            .split('\n')
            .filter((l) => /leading discovery group|standby/.test(l))
            .at(-1) ?? '',
        ),
      { timeoutMs: 20_000 },
    );
    assert.deepEqual(await current(), want, 'the woken ex-leader wrote nothing stale');
    // The property is one leader, not which one: on a loaded machine a lease may change hands again.
    await waitForLeader(group, 'prod');

    // One etcd member down: reads keep answering.
    await etcd.members[1]!.stop();
    assert.deepEqual(await current(), want);
    const ls = await other.setup.kport(['kube', 'ls', '--format', 'json']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));
    // Restart the member and the killed agent: still one leader, still the same set.
    await etcd.members[1]!.start();
    leader.log = '';
    leader.start();
    await waitFor('the restarted agent to stand by', async () => /standby/.test(leader.log), { timeoutMs: 30_000 });
    await waitForLeader(group, 'prod');
    await waitFor('the same set under whichever agent leads', async () => JSON.stringify(await current()) === JSON.stringify(want), { timeoutMs: 20_000 });
  });
});
