// Two servers on one etcd: a discovery agent's lease, granted through server A, is kept alive through
// server B after A is killed (SIGKILL), so its leadership key outlives A; and no agent keeps alive,
// revokes or attaches keys to another agent's lease through either server.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ServerClient } from '../../src/client/server-client.ts';
import { joinByHand, pinnedCa, startServer, type HandJoined, type TestServer } from '../helpers/network.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const LEADER = '/leaders/discovery/prod';
const TTL_MS = 3000;

describe('agent leases through any server (issue 29)', { timeout: 180_000 }, () => {
  let etcd: EtcdCluster | undefined;
  const servers: TestServer[] = [];
  const clients: ServerClient[] = [];
  before(async (t) => {
    if (havePeer(t as never, 'etcd', [BINARIES.etcd()])) etcd = await startEtcd({ members: 1 });
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop('SIGKILL');
    await etcd?.stop();
  });

  test('a lease granted through A is kept alive through B after A is killed; its leader key survives; another agent can neither keep it alive nor revoke it', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: '/kport-leases' };
    const a = await startServer({ storage });
    servers.push(a);
    const b = await startServer({ storage, sealKeyFrom: a });
    servers.push(b);
    const ca = await pinnedCa(a);
    const holder = await joinByHand(a, ca, { group: 'prod' });
    const other = await joinByHand(b, ca, { group: 'dev' });
    const through = (server: TestServer, agent: HandJoined) => {
      const client = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: agent.cert, key: agent.key });
      clients.push(client);
      return (body: Record<string, unknown>) => client.rawCall<Record<string, any>>('/v1/backend', body);
    };
    const holderA = through(a, holder);
    const holderB = through(b, holder);
    const otherA = through(a, other);
    const otherB = through(b, other);

    const { lease } = await holderA({ op: 'grant', ttl_ms: TTL_MS });
    assert.ok(await holderA({ op: 'create', key: LEADER, value: `${holder.host_id}/${lease.id}`, lease: lease.id }));
    // Another agent, through either server: not alive to it, its revoke does nothing, and it cannot hang a key on it.
    for (const call of [otherA, otherB]) {
      assert.deepEqual(await call({ op: 'keepalive', lease: lease.id }), { alive: false });
      await call({ op: 'revoke', lease: lease.id });
      // Its own group's leadership, claimed on the holder's lease: the policy lets the claim's shape pass, the lease is not its.
      await assert.rejects(
        call({ op: 'create', key: '/leaders/discovery/dev', value: `${other.host_id}/${lease.id}`, lease: lease.id }),
        new RegExp(`lease ${lease.id} has expired`),
      );
    }
    assert.equal((await holderB({ op: 'get', key: LEADER })).item?.value, `${holder.host_id}/${lease.id}`, 'the other agent revoked nothing');

    await a.stop('SIGKILL');
    // Kept alive through B only, for twice the lease's TTL: every answer alive, the leader key still there.
    const until = Date.now() + 2 * TTL_MS;
    while (Date.now() < until) {
      assert.deepEqual(await holderB({ op: 'keepalive', lease: lease.id }), { alive: true });
      await sleep(TTL_MS / 3);
    }
    assert.equal((await holderB({ op: 'get', key: LEADER })).item?.value, `${holder.host_id}/${lease.id}`, 'the leadership survived A');
    assert.deepEqual(await otherB({ op: 'keepalive', lease: lease.id }), { alive: false });

    // Its holder revokes it through B: the leader key goes with it.
    await holderB({ op: 'revoke', lease: lease.id });
    assert.equal((await holderB({ op: 'get', key: LEADER })).item ?? undefined, undefined, 'the leader key went with its lease');
    assert.deepEqual(await holderB({ op: 'keepalive', lease: lease.id }), { alive: false });
  });
});
