// 2,000 EKS clusters over 4 regions in moto: kport's first poll against a plain SDK loop making
// the minimal calls at the same concurrency, then a steady-state poll with nothing changed.
import { join } from 'node:path';
import { DescribeClusterCommand, EKSClient, ListClustersCommand } from '@aws-sdk/client-eks';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { mapLimit } from '../src/discovery/concurrency.ts';
import { DESCRIBE_CONCURRENCY } from '../src/discovery/eks-fetcher.ts';
import { DiscoveryEngine, sdkAwsApi } from '../src/discovery/engine.ts';
import { createClusters } from '../test/peers/aws.ts';
import { startMoto } from '../test/peers/moto.ts';
import { tempDir } from '../test/peers/process.ts';
import { median, row } from './lib.ts';

const TOTAL = Number(process.env.CLUSTERS ?? 2000);
const REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-southeast-1'];
const RUNS = Number(process.env.RUNS ?? 3);
const moto = await startMoto();
Object.assign(process.env, moto.env);
const started = Date.now();
await createClusters(
  moto,
  Array.from({ length: TOTAL }, (_, i) => ({ name: `c${i}`, region: REGIONS[i % REGIONS.length]!, tags: { env: i % 2 ? 'prod' : 'dev' } })),
);
process.stderr.write(`seeded ${TOTAL} clusters in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

/** The reference: ListClusters pages and one DescribeCluster per cluster, regions in parallel, 5 describes at a time. */
async function plainLoop(): Promise<{ ms: number; calls: number; clusters: number }> {
  const start = performance.now();
  let calls = 0;
  let clusters = 0;
  await Promise.all(
    REGIONS.map(async (region) => {
      const eks = new EKSClient({ region, maxAttempts: 8 });
      const names: string[] = [];
      let nextToken: string | undefined;
      do {
        calls++;
        const page = await eks.send(new ListClustersCommand({ maxResults: 100, nextToken }));
        names.push(...(page.clusters ?? []));
        nextToken = page.nextToken;
      } while (nextToken);
      const described = await mapLimit(names, DESCRIBE_CONCURRENCY, async (name) => {
        calls++;
        return (await eks.send(new DescribeClusterCommand({ name }))).cluster;
      });
      clusters += described.filter((c) => c?.tags?.env === 'prod').length;
      eks.destroy();
    }),
  );
  return { ms: performance.now() - start, calls, clusters };
}

const lines = [`| run | wall ms (median of ${RUNS}) | AWS calls | backend writes | clusters |`, '|---|---|---|---|---|'];
const plain: number[] = [];
const first: number[] = [];
const steady: number[] = [];
let plainCalls = 0;
let firstStats;
let steadyStats;
let steadyWrites = 0;
for (let run = 0; run < RUNS; run++) {
  const p = await plainLoop();
  plain.push(p.ms);
  plainCalls = p.calls;
  const backend = await SqliteBackend.open(join(tempDir('bench-disc'), 'kport.db'));
  const engine = new DiscoveryEngine({
    backend,
    discoveryGroup: 'bench',
    matchers: [{ types: ['eks'], regions: REGIONS, tags: { env: 'prod' } }],
    homeRegion: 'us-east-1',
    aws: await sdkAwsApi(),
  });
  let t = performance.now();
  firstStats = (await engine.poll()).stats;
  first.push(performance.now() - t);
  // Writes of the steady poll: count revisions the backend handed out.
  const revisionBefore = (await backend.put('/bench/marker', 'x')).revision;
  t = performance.now();
  steadyStats = (await engine.poll()).stats;
  steady.push(performance.now() - t);
  steadyWrites = (await backend.put('/bench/marker', 'y')).revision - revisionBefore - 1;
  engine.close();
  await backend.close();
}
lines.push(row(['plain SDK loop (reference)', median(plain), plainCalls, '-', TOTAL / 2]));
lines.push(row(['kport first poll', median(first), firstStats!.awsCalls, firstStats!.created, firstStats!.seen]));
lines.push(row(['kport steady-state poll', median(steady), steadyStats!.awsCalls, steadyWrites, steadyStats!.seen]));
await moto.stop();
process.stdout.write(
  `${lines.join('\n')}\n\nfirst poll / plain loop: ${(median(first) / median(plain)).toFixed(2)}x; steady-state calls / minimum: ${(steadyStats!.awsCalls / plainCalls).toFixed(3)}\nnode ${process.version}, ${new Date().toISOString()}\n`,
);
