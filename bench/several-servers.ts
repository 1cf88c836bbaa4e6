// Several servers (issue 29): 3 `kport server start` on a 3-member etcd behind HAProxy
// (test/helpers/several-servers.ts, proxy_service.proxy_protocol on, as a deployment behind HAProxy runs).
//   node bench/several-servers.ts failover   (SIM=300 simulated agents, RUNS=5)
//     A real kube-apiserver served by one real Kubernetes agent, SIM simulated agents (tunnels only), all
//     joined through the LB; a person's request loop through the LB (node's HTTP/2 client with the
//     profile's certificate, 2 s per request, a new connection after any error). kill -9 of the server
//     holding the real agent's tunnel: (a) time until a request started after the kill succeeds,
//     (b) time until every agent has a tunnel record (/kport/tunnels/<host id>/<server id>) on a live server.
//   node bench/several-servers.ts scale      (SIZES=2250,4500, CHILDREN=4, WARM_S=45, MEASURE_S=60)
//     Simulated agents (tunnel + kube_server heartbeat every 30 s, bench/sim-agents.ts) through the LB,
//     added on one cluster in steps up to each of SIZES, CHILDREN processes in all; after each step, per
//     server RSS and CPU (/proc over the window), tunnels (records and /metrics), and store writes/s
//     (etcd revision delta over the window).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Etcd3, type Namespace } from 'etcd3';
import { fetchPinnedCA } from '../src/client/server-client.ts';
import { CLUSTER, ROLES, startFixture } from '../test/helpers/kube-server-fixture.ts';
import { invitedPerson } from '../test/helpers/login.ts';
import { startSeveralServers, type SeveralServers } from '../test/helpers/several-servers.ts';
import { waitFor } from '../test/peers/process.ts';
import { median, procStat, row } from './lib.ts';
import { dialTunnels, joinAgents, newCounts, type ChildSpec, type SimCounts } from './sim-agents.ts';

const mode = process.argv[2];
if (mode !== 'failover' && mode !== 'scale') throw new Error('usage: node bench/several-servers.ts failover|scale');
// Thousands of joins from one address in seconds: the join rate limit is for strangers, not this bench.
const SERVER = { auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } };
const lbAddress = (f: SeveralServers) => ({ host: '127.0.0.1', port: f.front.port });

/** Which live server each tunnel record names, by agent host id (records of dead servers left out). */
async function tunnelHolders(f: SeveralServers, store: Namespace): Promise<Map<string, number[]>> {
  const byId = new Map(f.servers.map((_, i) => [f.hostId(i), i]));
  const holders = new Map<string, number[]>();
  for (const key of await store.getAll().prefix('/tunnels/').keys()) {
    const [hostId, serverId] = key.slice('/tunnels/'.length).split('/');
    const i = byId.get(serverId!);
    if (i === undefined || !f.alive(i)) continue;
    holders.set(hostId!, [...(holders.get(hostId!) ?? []), i]);
  }
  return holders;
}

async function failover(): Promise<void> {
  const sim = Number(process.env.SIM ?? 300);
  const runs = Number(process.env.RUNS ?? 5);
  const f = await startSeveralServers({ proxyProtocol: true, server: SERVER });
  const etcd = new Etcd3({ hosts: f.etcd.endpoints });
  const store = etcd.namespace('/kport');
  const fx = await startFixture({ roles: ROLES, on: f.front, agents: 1 });
  const stop = new AbortController();
  const tunnels: Array<Promise<void>> = [];
  try {
    await fx.admin('create', 'configmap', 'settings', '-n', 'apps');
    const alice = await invitedPerson(f.front, 'alice', ['prod-dev']);
    const profile = join(alice.home, '.kport', 'profiles', f.front.address.replace(':', '_'));
    const tls = Object.fromEntries(['ca', 'cert', 'key'].map((n) => [n, readFileSync(join(profile, `${n}.pem`))]));

    const ca = await fetchPinnedCA(lbAddress(f), [f.front.pin], () => {});
    const simAgents = await joinAgents(lbAddress(f), ca, await f.front.token('kube', ['--ttl=1h']), sim, 'sim');
    const counts = newCounts();
    await dialTunnels(lbAddress(f), ca, simAgents, stop.signal, counts, tunnels);
    const realId = fx.agents[0]!.hostId();
    const everyone = [realId, ...simAgents.map((a) => a.hostId)];

    // The request loop: one GET at a time, 20 ms apart; each request's start, end and outcome.
    const done: Array<{ started: number; ended: number; ok: boolean }> = [];
    let session: ClientHttp2Session | undefined;
    const get = () =>
      new Promise<boolean>((resolve) => {
        session ??= h2connect(`https://${f.front.address}`, tls).on('error', () => {});
        const req = session.request({ ':path': `/k/${CLUSTER}/api/v1/namespaces/apps/configmaps` });
        let status = 0;
        const end = (ok: boolean) => (clearTimeout(timer), resolve(ok));
        const timer = setTimeout(() => (req.close(), end(false)), 2000);
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', () => {});
        req.on('end', () => end(status === 200));
        req.on('error', () => end(false));
      });
    const loop = (async () => {
      while (!stop.signal.aborted) {
        const started = Date.now();
        const ok = await get();
        done.push({ started, ended: Date.now(), ok });
        if (!ok) session?.destroy(), (session = undefined);
        await sleep(20);
      }
    })();
    const settled = () =>
      waitFor(
        'every agent on a live server, one record each, and the request loop answered',
        async () => {
          const holders = await tunnelHolders(f, store);
          const records = [...holders.values()].reduce((n, s) => n + s.length, 0);
          return (done.at(-1)?.ok && everyone.every((id) => holders.has(id)) && records === everyone.length) || undefined;
        },
        { timeoutMs: 120_000 },
      );

    const rows: Array<{ victim: number; onIt: number; resumed: number; failed: number; back: number }> = [];
    for (let run = 0; run < runs; run++) {
      await settled();
      const before = await tunnelHolders(f, store);
      const victim = before.get(realId)![0]!;
      const onIt = [...before.values()].filter((s) => s.includes(victim)).length;
      const killed = Date.now();
      const killing = f.kill(victim);
      const resumed = waitFor('a request started after the kill to succeed', async () => done.find((r) => r.started >= killed && r.ok), {
        timeoutMs: 120_000,
      }).then((r) => r.ended - killed);
      const back = waitFor(
        'every agent on a live server again',
        async () => {
          const holders = await tunnelHolders(f, store);
          return everyone.every((id) => holders.get(id)?.some((i) => i !== victim)) ? Date.now() - killed : undefined;
        },
        { timeoutMs: 120_000 },
      );
      const result = { victim, onIt, resumed: await resumed, back: await back, failed: 0 };
      await killing;
      result.failed = done.filter((r) => r.started >= killed && r.ended <= killed + result.resumed && !r.ok).length;
      rows.push(result);
      process.stderr.write(
        `run ${run + 1}: s${victim} (${onIt} agents) killed; requests again after ${result.resumed} ms, every agent after ${result.back} ms\n`,
      );
      await f.restart(victim);
    }
    stop.abort();
    await loop;
    session?.destroy();

    const out = [
      `| run | server killed | agents' tunnels on it | request loop answered again ms (goal < 5,000) | requests failed meanwhile | every agent on a live server ms (goal < 10,000) |`,
      '|---|---|---|---|---|---|',
      ...rows.map((r, i) => row([String(i + 1), `s${r.victim}`, String(r.onIt), String(r.resumed), String(r.failed), String(r.back)])),
      row(['median', '', '', String(median(rows.map((r) => r.resumed))), '', String(median(rows.map((r) => r.back)))]),
      row(['max', '', '', String(Math.max(...rows.map((r) => r.resumed))), '', String(Math.max(...rows.map((r) => r.back)))]),
    ];
    process.stdout.write(`${out.join('\n')}\n\n${sim} simulated agents + 1 real Kubernetes agent, node ${process.version}, ${new Date().toISOString()}\n`);
  } finally {
    stop.abort();
    await Promise.all(tunnels);
    await fx.stop();
    etcd.close();
    await f.stop();
  }
}

/** Server i's /metrics (diag port), each metric's samples summed over their labels. */
async function metricsOf(f: SeveralServers, i: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://${f.diagAddress(i)}/metrics`)).text();
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const name = line.replace(/[{ ].*$/, '');
    const key = line.startsWith('nodejs_heap_space_size_total_bytes{space="new"}')
      ? 'new_space'
      : line.startsWith('nodejs_active_handles{type="Socket"}')
        ? 'sockets'
        : name;
    sums.set(key, (sums.get(key) ?? 0) + Number(line.split(' ').at(-1)));
  }
  return sums;
}

/**
 * One cluster, agents added in steps (SIZES, each step's agents in CHILDREN / steps processes of their
 * own) and measured after each: a join costs the servers more than a tunnel, so the steps share them.
 */
async function scale(): Promise<void> {
  const sizes = (process.env.SIZES ?? '2250,4500').split(',').map(Number);
  const children = Number(process.env.CHILDREN ?? 4);
  const perStep = Math.max(1, Math.round(children / sizes.length));
  const warmMs = Number(process.env.WARM_S ?? 45) * 1000;
  const measureMs = Number(process.env.MEASURE_S ?? 60) * 1000;
  const out = [
    '| agents | server | tunnel records | kport_reverse_tunnels_open | RSS MiB (goal < 500) | of it anonymous | idle RSS | (RSS - idle) KiB per agent | CPU (% of a core) | store writes/s (goal < 200) | heartbeats in window | agents |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  // Where each server's memory goes, from its /metrics at the end of the window (prom-client's process and Node figures).
  const memory = [
    '| agents | server | RSS MiB | V8 heap used MiB | V8 heap committed MiB | of it young generation | external MiB | outside the V8 heap MiB | sockets | heap used KiB per socket | outside the heap KiB per socket |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  // HAProxy holds two descriptors a connection, and each agent has two connections (its tunnel, its heartbeats').
  const f = await startSeveralServers({ proxyProtocol: true, server: SERVER, lbMaxconn: Math.max(4096, 2 * Math.max(...sizes) + 200) });
  const etcd = new Etcd3({ hosts: f.etcd.endpoints });
  const store = etcd.namespace('/kport');
  const procs: ChildProcess[] = [];
  try {
    const pids = f.servers.map((_, i) => f.pid(i)!);
    const idle = pids.map((p) => procStat(p));
    const ca = await fetchPinnedCA(lbAddress(f), [f.front.pin], () => {});
    const token = await f.front.token('kube', ['--ttl=2h']);
    const counts: SimCounts[] = [];
    let exited: string | false = false;
    const total = () =>
      counts.reduce((s, c) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v + c[k as keyof SimCounts]])) as SimCounts, newCounts());
    for (const size of sizes) {
      const started = Date.now();
      const adding = size - total().joined;
      for (let k = 0; k < perStep; k++) {
        const c = procs.length;
        const count = Math.floor(adding / perStep) + (k < adding % perStep ? 1 : 0);
        // 16 dials at a time each: the processes together stay under the 64 TLS handshakes one address may hold on a server.
        const spec: ChildSpec = { address: lbAddress(f), ca, token, count, name: `sim${c}`, batch: 16 };
        const child = spawn(process.execPath, [fileURLToPath(new URL('./sim-agents.ts', import.meta.url))], {
          env: { ...process.env, SIM_AGENTS: JSON.stringify(spec) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        procs.push(child);
        child.once('exit', (code) => (exited ||= code !== null && `agent process ${c} exited ${code}`));
        counts.push(newCounts());
        let buffered = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          buffered += chunk;
          const lines = buffered.split('\n');
          buffered = lines.pop()!;
          if (lines.length) counts[c] = JSON.parse(lines.at(-1)!) as SimCounts;
        });
      }
      // Every agent joined and tunnelled (an agent process that died ends the bench; waitFor would retry past it).
      for (let s = 0; total().dialled + total().refused < size; s++, await sleep(1000)) {
        if (exited) throw new Error(exited);
        if (s % 15 === 0) process.stderr.write(`${size} agents, ${s} s: ${total().joined} joined, ${total().open} tunnels open\n`);
      }
      const setupS = (Date.now() - started) / 1000;
      await sleep(warmMs);
      const revision = async () => Number((await etcd.maintenance.status()).header.revision);
      const [from, rev0, c0] = [pids.map((p) => procStat(p)), await revision(), total()];
      const childFrom = procs.map((p) => procStat(p.pid!));
      await sleep(measureMs);
      const [to, rev1, c1] = [pids.map((p) => procStat(p)), await revision(), total()];
      const childTo = procs.map((p) => procStat(p.pid!));
      const holders = await tunnelHolders(f, store);
      const records = f.servers.map((_, i) => [...holders.values()].filter((h) => h.includes(i)).length);
      const scraped = await Promise.all(f.servers.map((_, i) => metricsOf(f, i)));
      const metrics = scraped.map((m) => m.get('kport_reverse_tunnels_open') ?? 0);
      const mib = (bytes: number | undefined) => (bytes ?? 0) / 2 ** 20;
      for (const [i, m] of scraped.entries()) {
        const [rssB, heapUsed, heapTotal, sockets] = [
          m.get('process_resident_memory_bytes')!,
          m.get('nodejs_heap_size_used_bytes')!,
          m.get('nodejs_heap_size_total_bytes')!,
          m.get('sockets')!,
        ];
        memory.push(
          row([
            String(size),
            `s${i}`,
            mib(rssB),
            mib(heapUsed),
            mib(heapTotal),
            mib(m.get('new_space')),
            mib(m.get('nodejs_external_memory_bytes')),
            mib(rssB - heapTotal),
            String(sockets),
            heapUsed / 1024 / sockets,
            (rssB - heapTotal) / 1024 / sockets,
          ]),
        );
      }
      const cpu = (a: { cpuMs: number }, b: { cpuMs: number }) => `${(((b.cpuMs - a.cpuMs) / measureMs) * 100).toFixed(1)}%`;
      const anon = pids.map((p) => Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]) / 1024);
      const writes = ((rev1 - rev0) * 1000) / measureMs;
      const lines = f.servers.map((_, i) =>
        row([
          String(size),
          `s${i}`,
          String(records[i]),
          String(metrics[i]),
          to[i]!.rssMiB,
          anon[i]!,
          idle[i]!.rssMiB,
          metrics[i] ? ((to[i]!.rssMiB - idle[i]!.rssMiB) * 1024) / metrics[i]! : '-',
          cpu(from[i]!, to[i]!),
          i === 0 ? writes.toFixed(1) : '',
          i === 0 ? `${c1.beats - c0.beats} (${c1.beatsFailed - c0.beatsFailed} failed)` : '',
          i === 0
            ? `${c1.open} open, ${c1.lost} lost, ${c1.refused} refused; step set up in ${setupS.toFixed(0)} s; agent processes' CPU ${childFrom.map((a, j) => cpu(a, childTo[j]!)).join(' ')}`
            : '',
        ]),
      );
      out.push(...lines);
      process.stderr.write(`${lines.join('\n')}\n${memory.slice(-3).join('\n')}\n`);
    }
    process.stdout.write(
      `${out.join('\n')}\n\n${memory.join('\n')}\n\nwarm-up ${warmMs / 1000} s, window ${measureMs / 1000} s, node ${process.version}, ${new Date().toISOString()}\n`,
    );
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    etcd.close();
    await f.stop();
  }
}

await (mode === 'failover' ? failover() : scale());
