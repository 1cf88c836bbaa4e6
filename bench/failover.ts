// Failover time on a 3-node etcd: three agents in one group; the leader is SIGKILLed five times
// and the time until another agent leads is measured (median of 5), at the default 15 s lease.
import { randomUUID } from 'node:crypto';
import { createClusters } from '../test/peers/aws.ts';
import { startEtcd } from '../test/peers/etcd.ts';
import { startMoto } from '../test/peers/moto.ts';
import { startFleetAgent, waitForLeader } from '../test/helpers/fleet.ts';
import { median } from './lib.ts';

const TTL = process.env.LEASE_TTL ?? '15s';
const RUNS = Number(process.env.RUNS ?? 5);
const [moto, etcd] = await Promise.all([startMoto(), startEtcd({ members: 3 })]);
await createClusters(
  moto,
  Array.from({ length: 20 }, (_, i) => ({ name: `c${i}`, region: 'us-east-1', tags: { env: 'prod' } })),
);
const storage = { type: 'etcd', peers: etcd.endpoints, prefix: `/bench-${randomUUID()}` };
const matchers = [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'prod' } }];
const agents = [];
for (const name of ['a1', 'a2', 'a3']) agents.push(await startFleetAgent(moto, { name, group: 'prod', storage, matchers, leaseTtl: TTL, pollInterval: '5s' }));
const times: number[] = [];
const ttlMs = Number.parseFloat(TTL) * 1000;
for (let run = 0; run < RUNS; run++) {
  const leader = await waitForLeader(agents, 'prod', { timeoutMs: 4 * ttlMs + 30_000 });
  leader.proc!.kill('SIGKILL');
  await leader.proc;
  const killed = Date.now();
  await waitForLeader(agents, 'prod', { not: leader, timeoutMs: 4 * ttlMs + 30_000 });
  times.push(Date.now() - killed);
  process.stderr.write(`failover ${run + 1}: ${times.at(-1)} ms\n`);
  leader.log = '';
  leader.start();
}
for (const a of agents) a.proc?.kill('SIGKILL');
await Promise.all(agents.map((a) => a.proc?.catch(() => undefined)));
await Promise.all([moto.stop(), etcd.stop()]);
process.stdout.write(
  `| lease TTL | failovers | median ms | min ms | max ms | bound (2x TTL) |\n|---|---|---|---|---|---|\n| ${TTL} | ${RUNS} | ${median(times)} | ${Math.min(...times)} | ${Math.max(...times)} | ${2 * ttlMs} |\n\nnode ${process.version}, ${new Date().toISOString()}\n`,
);
