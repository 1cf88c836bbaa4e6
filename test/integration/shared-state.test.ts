// Two servers on one etcd share what used to live in one process (issue 29): an agent's renewals are
// paced across both; a discovery agent's lease, granted through server A, is kept alive through
// server B after A is killed (SIGKILL), so its leadership key outlives A; and no agent keeps alive,
// revokes or attaches keys to another agent's lease through either server.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ServerClient } from '../../src/client/server-client.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { joinByHand, pinnedCa, startServer, type HandJoined, type TestServer } from '../helpers/network.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const LEADER = '/leaders/discovery/prod';
const TTL_MS = 3000;

describe('two servers on one etcd: renewal pacing and agent leases (issue 29)', { timeout: 180_000 }, () => {
  let etcd: EtcdCluster | undefined;
  let a: TestServer;
  let b: TestServer;
  let ca: string;
  const servers: TestServer[] = [];
  const clients: ServerClient[] = [];
  const through = (server: TestServer, agent: HandJoined) => {
    const client = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: agent.cert, key: agent.key });
    clients.push(client);
    return <T = Record<string, any>>(path: string, body: Record<string, unknown>) => client.rawCall<T>(path, body);
  };
  before(async (t) => {
    if (!havePeer(t as never, 'etcd', [BINARIES.etcd()])) return;
    etcd = await startEtcd({ members: 1 });
    const storage = { type: 'etcd', peers: etcd.endpoints, prefix: '/kport-shared' };
    a = await startServer({ storage });
    servers.push(a);
    b = await startServer({ storage, sealKeyFrom: a });
    servers.push(b);
    ca = await pinnedCa(a);
  });

  test('an agent renewing through A is paced at B too; two renewals racing on A and B: exactly one is issued', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    for (const racing of [false, true]) {
      const pair = await generateKeys();
      const agent = await joinByHand(a, ca, { group: 'prod', pair });
      const renew = async (server: TestServer) => through(server, agent)('/v1/renew', { csr: await createCsr(pair, 'agent-host') });
      const outcomes = racing
        ? await Promise.allSettled([renew(a), renew(b)])
        : [await Promise.allSettled([renew(a)]).then((r) => r[0]!), await Promise.allSettled([renew(b)]).then((r) => r[0]!)];
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1, JSON.stringify(outcomes.map((o) => o.status)));
      const refused = outcomes.find((o) => o.status === 'rejected');
      assert.match(
        String(refused?.reason),
        /renewed its certificate \d+ s ago: a certificate is renewed at two thirds of its life, at most once every 21600 s/,
      );
    }
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop('SIGKILL');
    await etcd?.stop();
  });

  test('a lease granted through A is kept alive through B after A is killed; its leader key survives; another agent can neither keep it alive nor revoke it', async (t) => {
    if (!etcd) return t.skip('no etcd peer');
    const holder = await joinByHand(a, ca, { group: 'prod' });
    const other = await joinByHand(b, ca, { group: 'dev' });
    const call = (server: TestServer, agent: HandJoined) => {
      const on = through(server, agent);
      return (body: Record<string, unknown>) => on('/v1/backend', body);
    };
    const holderA = call(a, holder);
    const holderB = call(b, holder);
    const otherA = call(a, other);
    const otherB = call(b, other);

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
