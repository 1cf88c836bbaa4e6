// An unauthenticated flood against a `kport server start` process (issue 18): 8 connections without
// a client certificate sending never-ending `/v1/join` bodies, as fast as HTTP/2 flow control lets
// them, for FLOOD_S seconds (30), while one joined agent makes a call every 50 ms. Server RSS and CPU
// from /proc. Two runs: the server as configured by default (the per-address join rate applies,
// since the flood comes from one address), and with the join rate limit lifted, which is what a
// flood from many addresses meets: the body limits and budgets alone. The attackers are a child
// process, so their own work does not delay the agent's calls.
//   node bench/flood.ts
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { createCsr, generateKeys, keyPem } from '../src/pki/certs.ts';
import { fetchPinnedCA, ServerClient } from '../src/client/server-client.ts';
import { startServer } from '../test/helpers/network.ts';
import { median, percentile, procStat, row } from './lib.ts';

const floodMs = Number(process.env.FLOOD_S ?? 30) * 1000;
const CONNECTIONS = 8;
const out: string[] = [];

/** One attacker connection: streams of never-ending join bodies, a new one as each is ended. */
function attacker(port: number, stop: AbortSignal, stats: { streams: number; bytes: number; statuses: Record<string, number> }): Promise<void> {
  const chunk = Buffer.alloc(16 * 1024, 0x20);
  let session: ClientHttp2Session | undefined;
  const connect = () => {
    session = h2connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    return session;
  };
  const stream = async (): Promise<void> => {
    while (!stop.aborted) {
      const s = session && !session.closed && !session.destroyed ? session : connect();
      let req;
      try {
        req = s.request({ ':method': 'POST', ':path': '/v1/join', 'content-type': 'application/json' });
      } catch {
        await sleep(10);
        continue;
      }
      stats.streams++;
      req.on('error', () => {});
      req.on('response', (h) => (stats.statuses[String(h[':status'])] = (stats.statuses[String(h[':status'])] ?? 0) + 1));
      req.resume();
      req.write('{"token":"');
      while (!stop.aborted && !req.closed && !req.destroyed) {
        stats.bytes += chunk.length;
        if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once('drain', r)), new Promise((r) => req.once('close', r)), sleep(1000)]);
      }
      req.destroy();
    }
  };
  // As many streams as the server lets a connection have, and more.
  return Promise.all(Array.from({ length: 16 }, () => stream())).then(() => session?.destroy());
}

/** The attackers run in their own process, so their writes do not delay the agent's calls in this one. */
if (process.argv[2] === 'attack') {
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  const stats = { streams: 0, bytes: 0, statuses: {} as Record<string, number> };
  await Promise.all(Array.from({ length: CONNECTIONS }, () => attacker(Number(process.argv[3]), stop.signal, stats)));
  process.stdout.write(JSON.stringify(stats));
  process.exit(0);
}

async function run(label: string, auth: Record<string, unknown> | undefined): Promise<void> {
  const server = await startServer({
    ...(auth && { auth }),
    ...(process.env.SERVER_NODE_OPTIONS && { env: { NODE_OPTIONS: process.env.SERVER_NODE_OPTIONS } }),
  });
  const pid = server.proc!.pid!;
  const ca = await fetchPinnedCA({ host: '127.0.0.1', port: server.port }, [server.pin], () => {});
  const keys = await generateKeys();
  const anonymous = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
  const issued = await anonymous.rawCall<{ cert: string; ca: string }>('/v1/join', {
    token: await server.token('discovery'),
    roles: ['discovery'],
    hostname: 'bench',
    csr: await createCsr(keys, 'bench'),
    discovery_group: 'g',
  });
  anonymous.close();
  const agent = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca: issued.ca, cert: issued.cert, key: await keyPem(keys.privateKey) });
  const call = async () => {
    const t = performance.now();
    await agent.rawCall('/v1/backend', { op: 'get', key: '/resources/kube_cluster/none' });
    return performance.now() - t;
  };
  // The agent's calls alone, first, for the same machine's baseline.
  const quiet: number[] = [];
  for (let end = Date.now() + 5000; Date.now() < end; await sleep(50)) quiet.push(await call());
  const before = procStat(pid);

  const attack = execa(process.execPath, [fileURLToPath(import.meta.url), 'attack', String(server.port)], { reject: false });
  const during: number[] = [];
  let failed = 0;
  let peakRss = before.rssMiB;
  const trace: number[] = [];
  const sampler = setInterval(() => {
    const rss = procStat(pid).rssMiB;
    peakRss = Math.max(peakRss, rss);
    trace.push(rss);
  }, 250);
  for (let end = Date.now() + floodMs; Date.now() < end; await sleep(50)) during.push(await call().catch(() => (failed++, NaN)));
  const atEnd = procStat(pid);
  attack.kill('SIGTERM');
  const stats = JSON.parse(String((await attack).stdout)) as { streams: number; bytes: number; statuses: Record<string, number> };
  clearInterval(sampler);
  await sleep(5000);
  const after = procStat(pid);
  agent.close();
  await server.stop();
  const ok = during.filter((d) => !Number.isNaN(d));
  if (process.env.BENCH_DEBUG)
    process.stderr.write(
      `${label}: server RSS every 5 s: ${trace
        .filter((_, i) => i % 20 === 0)
        .map((r) => r.toFixed(0))
        .join(' ')}\n`,
    );
  const statuses = Object.entries(stats.statuses)
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ');
  out.push(
    row([
      label,
      `${(stats.bytes / (1 << 20)).toFixed(0)} MiB in ${stats.streams} streams (${statuses})`,
      before.rssMiB,
      peakRss,
      peakRss - before.rssMiB,
      after.rssMiB,
      `${(((atEnd.cpuMs - before.cpuMs) / floodMs) * 100).toFixed(0)}%`,
      median(quiet),
      percentile(quiet, 99),
      median(ok),
      percentile(ok, 99),
      `${ok.length}/${failed}`,
    ]),
  );
}

out.push(`### Unauthenticated flood: ${CONNECTIONS} connections of never-ending join bodies for ${floodMs / 1000} s`, '');
out.push(
  '| server | flood sent | RSS before MiB | RSS peak MiB | growth MiB | RSS 5 s after MiB | server CPU (% of a core) | agent p50 ms (quiet) | p99 ms (quiet) | agent p50 ms (flood) | p99 ms (flood) | agent calls ok/failed |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
);
await run('defaults (join rate per address applies)', undefined);
await run('join rate limit lifted (a flood from many addresses)', { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } });
process.stdout.write(`${out.join('\n')}\n\nnode ${process.version}, ${new Date().toISOString()}\n`);
