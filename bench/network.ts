// Network mode (issue 12): join latency, a discovery poll of 1,000 clusters through the server
// against local mode, and 1,000 agents heartbeating against one server process.
//   node bench/network.ts            all three
//   node bench/network.ts agents     only the 1,000 agents (AGENTS, HEARTBEAT_S, MEASURE_S)
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteBackend } from '../src/backend/sqlite.ts';
import { RemoteBackend } from '../src/client/remote-backend.ts';
import type { Backend } from '../src/backend/backend.ts';
import { DiscoveryEngine, sdkAwsApi } from '../src/discovery/engine.ts';
import { GroupLeadership } from '../src/discovery/leadership.ts';
import { Heartbeat } from '../src/discovery/heartbeat.ts';
import { joinServer } from '../src/join/network-identity.ts';
import { createCsr, generateKeys, keyPem } from '../src/pki/certs.ts';
import { ServerClient, fetchPinnedCA } from '../src/client/server-client.ts';
import { createClusters } from '../test/peers/aws.ts';
import { startMoto } from '../test/peers/moto.ts';
import { tempDir } from '../test/peers/process.ts';
import { startServer, type TestServer } from '../test/helpers/network.ts';
import { median, percentile, procStat, row } from './lib.ts';

const only = process.argv[2];
const out: string[] = [];
const never = new AbortController().signal;

async function remoteBackend(server: TestServer, group: string): Promise<{ backend: Backend; hostId: string }> {
  const secret = await server.token('discovery');
  const agent = await joinServer({
    dataDir: tempDir('bench-agent'),
    server: { host: '127.0.0.1', port: server.port },
    pins: [server.pin],
    roles: ['discovery'],
    discoveryGroup: group,
    token: () => secret,
    signal: never,
    warn: () => {},
  });
  return { backend: new RemoteBackend(agent.client, { stopRetrying: never }), hostId: agent.identity.host_id };
}

if (!only || only === 'join') {
  const server = await startServer();
  const secret = await server.token('discovery');
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    const agent = await joinServer({
      dataDir: tempDir('bench-join'),
      server: { host: '127.0.0.1', port: server.port },
      pins: [server.pin],
      roles: ['discovery'],
      discoveryGroup: 'g',
      token: () => secret,
      signal: never,
      warn: () => {},
    });
    times.push(performance.now() - start);
    agent.client.close();
  }
  await server.stop();
  out.push(
    '### Join latency',
    '',
    'A whole join as `discover run` makes it: first contact and CA pin check, key and CSR, `/v1/join` (token, transaction, signed host cert), identity written (0600). 20 joins in a row.',
    '',
  );
  out.push('| joins | median ms | p90 ms | max ms |', '|---|---|---|---|', row([20, median(times), percentile(times, 90), Math.max(...times)]), '');
}

if (!only || only === 'poll') {
  const total = Number(process.env.CLUSTERS ?? 1000);
  const runs = Number(process.env.RUNS ?? 3);
  const moto = await startMoto();
  Object.assign(process.env, moto.env);
  const seeded = Date.now();
  const regions = ['us-east-1', 'eu-west-1'];
  await createClusters(
    moto,
    Array.from({ length: total }, (_, i) => ({ name: `c${i}`, region: regions[i % 2]!, tags: { env: 'prod' } })),
  );
  process.stderr.write(`seeded ${total} clusters in ${((Date.now() - seeded) / 1000).toFixed(0)} s\n`);
  const result: Record<'local' | 'server', { first: number[]; steady: number[] }> = { local: { first: [], steady: [] }, server: { first: [], steady: [] } };
  for (let run = 0; run < runs; run++) {
    for (const mode of ['local', 'server'] as const) {
      const server = mode === 'server' ? await startServer() : undefined;
      const { backend, hostId } = server
        ? await remoteBackend(server, 'bench')
        : { backend: await SqliteBackend.open(join(tempDir('bench-local'), 'kport.db')), hostId: 'local' };
      const leadership = new GroupLeadership(backend, { group: 'bench', hostId, ttlMs: 30_000 });
      await leadership.acquire(never);
      const engine = new DiscoveryEngine({
        backend,
        discoveryGroup: 'bench',
        matchers: [{ types: ['eks'], regions, tags: { env: 'prod' } }],
        homeRegion: 'us-east-1',
        aws: await sdkAwsApi(),
      });
      let start = performance.now();
      const first = await engine.poll(leadership.fence);
      result[mode].first.push(performance.now() - start);
      if (first.stats.created !== total) throw new Error(`${mode}: created ${first.stats.created} of ${total}`);
      start = performance.now();
      await engine.poll(leadership.fence);
      result[mode].steady.push(performance.now() - start);
      engine.close();
      await leadership.release();
      await backend.close();
      await server?.stop();
    }
  }
  await moto.stop();
  out.push(
    '### A discovery poll of 1,000 clusters: local sqlite vs through the server',
    '',
    `${total} EKS clusters in moto over 2 regions; the same engine in this process, its Backend a local sqlite file or a RemoteBackend to a \`kport server start\` process (sqlite behind it). Medians of ${runs}, the modes interleaved.`,
    '',
  );
  out.push('| poll | local ms | through the server ms | ratio |', '|---|---|---|---|');
  for (const which of ['first', 'steady'] as const) {
    const l = median(result.local[which]);
    const s = median(result.server[which]);
    out.push(row([which === 'first' ? `first (${total} creates)` : 'steady (nothing changed)', l, s, `${(s / l).toFixed(2)}x`]));
  }
  out.push('');
}

if (!only || only === 'agents') {
  const count = Number(process.env.AGENTS ?? 1000);
  const heartbeatMs = Number(process.env.HEARTBEAT_S ?? 10) * 1000;
  const measureMs = Number(process.env.MEASURE_S ?? 60) * 1000;
  // 1,000 joins from one address in seconds: the join rate limit is for strangers, not this bench.
  const server = await startServer({ auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } });
  const pid = server.proc!.pid!;
  const idle = procStat(pid);
  const secret = await server.token('discovery', ['--ttl=1h']);
  const ca = await fetchPinnedCA({ host: '127.0.0.1', port: server.port }, [server.pin], () => {});
  const joinStart = performance.now();
  // Each simulated agent: its own key, its own host certificate, its own TLS connection.
  // Joins 5 to a connection: a connection without a host certificate gets 8 streams.
  const anonymous = Array.from({ length: 10 }, () => new ServerClient({ host: '127.0.0.1', port: server.port }, { ca }));
  const agents: Array<{ heartbeat: Heartbeat; backend: RemoteBackend }> = [];
  for (let i = 0; i < count; i += 50) {
    agents.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
          const keys = await generateKeys();
          const issued = await anonymous[j % 10]!.rawCall<{ host_id: string; cert: string }>('/v1/join', {
            token: secret,
            roles: ['discovery'],
            hostname: `sim-${i + j}`,
            csr: await createCsr(keys, 'sim'),
            discovery_group: 'sim',
          });
          const backend = new RemoteBackend(
            new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: issued.cert, key: await keyPem(keys.privateKey) }),
            { stopRetrying: never },
          );
          return {
            backend,
            heartbeat: new Heartbeat(backend, { hostId: issued.host_id, discoveryGroup: 'sim', ttlMs: 3 * heartbeatMs, now: () => new Date() }),
          };
        }),
      )),
    );
  }
  for (const c of anonymous) c.close();
  const joinedMs = performance.now() - joinStart;
  const afterJoins = procStat(pid);
  if (process.env.BENCH_DEBUG)
    process.stderr.write(`server RSS idle ${idle.rssMiB.toFixed(0)} MiB, after ${count} joins ${afterJoins.rssMiB.toFixed(0)} MiB\n`);
  let beats = 0;
  let failures = 0;
  const latencies: number[] = [];
  const stop = new AbortController();
  // Spread over the interval, as agents started at different times are.
  const loops = agents.map(async (a, i) => {
    await sleep((i / count) * heartbeatMs, undefined, { signal: stop.signal }).catch(() => undefined);
    while (!stop.signal.aborted) {
      const t = performance.now();
      await a.heartbeat.update({ state: 'standby' }).then(
        () => beats++,
        () => failures++,
      );
      latencies.push(performance.now() - t);
      await sleep(heartbeatMs, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  });
  await sleep(2 * heartbeatMs);
  const from = procStat(pid);
  if (process.env.BENCH_DEBUG) process.stderr.write(`server RSS with ${count} connections ${from.rssMiB.toFixed(0)} MiB\n`);
  const beatsFrom = beats;
  latencies.length = 0;
  await sleep(measureMs);
  const to = procStat(pid);
  const measuredBeats = beats - beatsFrom;
  stop.abort();
  await Promise.all(loops);
  for (const a of agents) await a.backend.close();
  await server.stop();
  const cpuShare = (to.cpuMs - from.cpuMs) / measureMs;
  out.push(
    `### ${count} agents heartbeating every ${heartbeatMs / 1000} s against one server`,
    '',
    `${count} simulated agents in one process, each with its own key, host certificate (joined through \`/v1/join\`) and HTTP/2 connection, each putting its discovery_service heartbeat through a RemoteBackend every ${heartbeatMs / 1000} s, spread over the interval. The server is a \`kport server start\` process on sqlite; CPU and RSS from /proc over ${measureMs / 1000} s after ${(2 * heartbeatMs) / 1000} s of warm-up.`,
    '',
  );
  out.push(
    '| agents | joins took s | heartbeats/s | failed | heartbeat p50 ms | p99 ms | server CPU (% of a core) | CPU per heartbeat ms | server RSS MiB (idle) |',
    '|---|---|---|---|---|---|---|---|---|',
  );
  out.push(
    row([
      count,
      joinedMs / 1000,
      (measuredBeats * 1000) / measureMs,
      failures,
      median(latencies),
      percentile(latencies, 99),
      `${(cpuShare * 100).toFixed(1)}%`,
      (to.cpuMs - from.cpuMs) / Math.max(1, measuredBeats),
      `${to.rssMiB.toFixed(0)} (${idle.rssMiB.toFixed(0)})`,
    ]),
    '',
  );
}

process.stdout.write(`${out.join('\n')}\nnode ${process.version}, ${new Date().toISOString()}\n`);
