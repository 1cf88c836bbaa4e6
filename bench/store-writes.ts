// Store writes per second in steady state (issue 29): AGENTS simulated Kubernetes agents on one
// `kport server start` on etcd, each sending its kube_server heartbeat every 30 s through
// /v1/backend as a Kubernetes agent does (src/kube/server-heartbeat.ts), spread over the interval.
// The figure is etcd's revision delta over a window after a warm-up (every write is one revision;
// a lease keep-alive is none), for this build and for the build of BEFORE (a git revision, unpacked
// and bundled in a temporary directory), one after the other in the same run.
//   node bench/store-writes.ts        (AGENTS=1000, WARM_S=45, MEASURE_S=60, BEFORE=586a4e1, ONLY=before|after)
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { fetchPinnedCA, ServerClient } from '../src/client/server-client.ts';
import { createCsr, generateKeys, keyPem } from '../src/pki/certs.ts';
import { KUBE_SERVER } from '../src/resources/kube-server.ts';
import { resourceKey } from '../src/resources/resource.ts';
import { NODE_CLI, type Cli } from '../test/helpers/cli.ts';
import { startServer } from '../test/helpers/network.ts';
import { startEtcd } from '../test/peers/etcd.ts';
import { tempDir } from '../test/peers/process.ts';
import { row } from './lib.ts';

const agents = Number(process.env.AGENTS ?? 1000);
const warmMs = Number(process.env.WARM_S ?? 45) * 1000;
const measureMs = Number(process.env.MEASURE_S ?? 60) * 1000;
const before = process.env.BEFORE ?? '586a4e1';
const INTERVAL_MS = 30_000;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The CLI as it was at `rev`: its tree unpacked and bundled beside this one's node_modules. */
function buildAt(rev: string): Cli {
  const dir = join(tempDir('kport-before'), 'src');
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive ${rev} | tar -x -C "${dir}"`]);
  if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, ['scripts/bundle.ts'], { cwd: dir, stdio: 'ignore' });
  return { name: 'node', file: process.execPath, prefix: [join(dir, 'bin', 'kport.js')] };
}

async function measure(cli: Cli): Promise<{ perSecond: number; failed: number; calls: number }> {
  const etcd = await startEtcd({ members: 1 });
  const server = await startServer({
    cli,
    storage: { type: 'etcd', peers: etcd.endpoints, prefix: '/kport-bench' },
    // AGENTS joins from one address in seconds: the join rate limit is for strangers, not this bench.
    auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } },
  });
  const address = { host: '127.0.0.1', port: server.port };
  const stop = new AbortController();
  const clients: ServerClient[] = [];
  const etcdClient = new Etcd3({ hosts: etcd.endpoints });
  try {
    const secret = await server.token('kube', ['--ttl=1h']);
    const ca = await fetchPinnedCA(address, [server.pin], () => {});
    const anonymous = Array.from({ length: 10 }, () => new ServerClient(address, { ca }));
    const joined: Array<{ hostId: string; client: ServerClient }> = [];
    for (let i = 0; i < agents; i += 50) {
      joined.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, agents - i) }, async (_, j) => {
            const keys = await generateKeys();
            const body = { token: secret, roles: ['kube'], hostname: `sim-${i + j}`, csr: await createCsr(keys, 'sim'), discovery_group: '' };
            // A join whose connection dropped on this busy machine is asked again (not what is measured).
            const join = () => anonymous[j % 10]!.rawCall<{ cert: string; host_id: string }>('/v1/join', body);
            const issued = await join().catch(() => sleep(1000).then(join));
            const client = new ServerClient(address, { ca, cert: issued.cert, key: await keyPem(keys.privateKey) });
            clients.push(client);
            return { hostId: issued.host_id, client };
          }),
        )),
      );
    }
    for (const c of anonymous) c.close();
    const started = new Date().toISOString();
    let calls = 0;
    let failed = 0;
    // Each agent's heartbeat as runKubeServerHeartbeat writes it: the same clusters each time, a new time.
    const beat = async ({ hostId, client }: (typeof joined)[number]) => {
      const at = new Date();
      const value = {
        kind: KUBE_SERVER,
        version: 'v1',
        metadata: { name: hostId, description: 'kport kubernetes service on sim', expires: new Date(at.getTime() + 3 * INTERVAL_MS).toISOString() },
        spec: { host_id: hostId, hostname: 'sim', clusters: [], started, last_heartbeat: at.toISOString() },
      };
      calls++;
      await client
        .rawCall('/v1/backend', { op: 'put', key: resourceKey(KUBE_SERVER, hostId), value: JSON.stringify(value), ttl_ms: 3 * INTERVAL_MS })
        .catch(() => failed++);
    };
    const loops = joined.map(async (agent, i) => {
      await sleep((i * INTERVAL_MS) / joined.length, undefined, { signal: stop.signal }).catch(() => undefined);
      while (!stop.signal.aborted) {
        await beat(agent);
        await sleep(INTERVAL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    });
    const revision = async () => Number((await etcdClient.maintenance.status()).header.revision);
    await sleep(warmMs);
    const [rev0, calls0, failed0] = [await revision(), calls, failed];
    await sleep(measureMs);
    const rev1 = await revision();
    const result = { perSecond: ((rev1 - rev0) * 1000) / measureMs, failed: failed - failed0, calls: calls - calls0 };
    stop.abort();
    await Promise.all(loops);
    return result;
  } finally {
    stop.abort();
    for (const c of clients) c.close();
    etcdClient.close();
    await server.stop();
    await etcd.stop();
  }
}

const only = process.env.ONLY;
// ONLY=after measures this build alone (a window past the 10-minute refresh, say).
const builds: Array<[string, () => Cli]> = [
  [`before (${before})`, () => buildAt(before)],
  ['after (this build)', () => NODE_CLI],
];
console.log(row(['build', 'agents', 'heartbeat every s', 'heartbeat calls in window', 'failed', 'store writes/s', 'per 10,000 agents']));
for (const [name, cli] of builds) {
  if (only && !name.startsWith(only)) continue;
  const r = await measure(cli());
  console.log(row([name, agents, INTERVAL_MS / 1000, r.calls, String(r.failed), r.perSecond.toFixed(1), ((r.perSecond * 10_000) / agents).toFixed(0)]));
}
console.log(`node ${process.version}, warm-up ${warmMs / 1000} s, window ${measureMs / 1000} s, ${new Date().toISOString()}`);
