// Side by side against one kube-apiserver: direct, through `kport kube login`, through `kubectl proxy`;
// and, to show the API server's share, direct and through kubectl proxy with kport's impersonation.
// Two clients: a Go program using net/http as client-go does (HTTP/2 over TLS, one shared
// connection; HTTP/1.1 to kubectl proxy's plain http://), and undici over HTTP/1.1. p50/p99 of a
// small GET at 1 client, requests/s with 32, all paths taken in turn; kport's CPU per proxied
// request from /proc; kport's RSS holding 500 watches on one HTTP/2 connection.
// Issue 21 adds "through the server": person -> `kport server start` -> reverse tunnel -> Kubernetes
// agent -> apiserver (bench/server-path.ts) to every table, its 250 watches (server + agent RSS),
// new sessions per second as a fresh `kubectl get` makes them (direct, kube login, the server), and
// 100 idle `exec -it` sessions held through the server (bench/exec-sessions.ts).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { Agent, request } from 'undici';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir, waitFor } from '../test/peers/process.ts';
import { BINARIES, peersCacheDir } from '../test/peers/versions.ts';
import { KPORT, median, percentile, row } from './lib.ts';
import { startServerPath } from './server-path.ts';
import { holdExecSessions } from './exec-sessions.ts';

const PATH = '/api/v1/namespaces/default';
// The Go client is built from bench/h2client with the toolchain the test peers are built with.
const goClient = join(peersCacheDir(), 'bench', 'h2client');
mkdirSync(join(peersCacheDir(), 'bench'), { recursive: true });
execFileSync('go', ['build', '-o', goClient, '.'], { cwd: fileURLToPath(new URL('./h2client/', import.meta.url)), stdio: 'inherit' });
const api = await startKubeApiserver({ kubeletClient: true });
const home = tempDir('bench-proxy');
const env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml') };
writeFileSync(
  env.KPORT_CONFIG,
  stringify({
    version: 'v3',
    teleport: { data_dir: join(home, 'data') },
    roles: [{ name: 'admin', kubernetes_labels: { '*': '*' }, kubernetes_groups: ['system:masters'] }],
    users: [{ name: 'bench', roles: ['admin'] }],
  }),
);
await execa(process.execPath, [KPORT, 'rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], {
  env: { ...env, KUBECONFIG: api.kubeconfig(api.admin) },
});
writeFileSync(
  join(home, 'c.yaml'),
  stringify({ kind: 'kube_cluster', metadata: { name: 'bench' }, spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') } }),
);
await execa(process.execPath, [KPORT, 'create', '-f', join(home, 'c.yaml')], { env });

const kport = execa(process.execPath, [KPORT, 'kube', 'login', 'bench', '--user', 'bench'], { env, reject: false });
let out = '';
kport.stdout!.on('data', (c: Buffer) => (out += c));
const kubeconfig = parse(readFileSync(await waitFor('kport ready', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]), 'utf8'));
const kportUrl = kubeconfig.clusters[0].cluster.server as string;
const tls = {
  ca: Buffer.from(kubeconfig.clusters[0].cluster['certificate-authority-data'], 'base64'),
  cert: Buffer.from(kubeconfig.users[0].user['client-certificate-data'], 'base64'),
  key: Buffer.from(kubeconfig.users[0].user['client-key-data'], 'base64'),
};
async function startKubectlProxy(args: string[]) {
  const proc = execa(BINARIES.kubectl(), [...args, 'proxy', '--port=0'], { reject: false });
  let text = '';
  proc.stdout!.on('data', (c: Buffer) => (text += c));
  return { proc, url: `http://${await waitFor('kubectl proxy', async () => text.match(/Starting to serve on (\S+)/)?.[1])}` };
}
// kubectl proxy as people run it (an admin kubeconfig), and doing kport's job: the proxy's
// identity impersonating the person, which costs the API server checks of its own.
const kubectlProxy = await startKubectlProxy(['--kubeconfig', api.kubeconfig(api.admin)]);
const through = await startServerPath(api);
const serverPid = through.server.proc!.pid!;
const agentPid = through.agent.pid!;
const kubectlAs = await startKubectlProxy(['--kubeconfig', api.kubeconfig(api.proxy), '--as', 'bench', '--as-group', 'system:masters']);
const impersonating = { 'impersonate-user': 'bench', 'impersonate-group': 'system:masters' };

const rssOf = (pid: number) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
const idleRss = rssOf(kport.pid!);

const files = (name: string, text: string | Buffer) => {
  const path = join(home, name);
  writeFileSync(path, text);
  return path;
};
const targets = [
  {
    name: 'direct',
    url: api.server,
    headers: { authorization: `Bearer ${api.admin.token}` },
    agent: new Agent({ connect: { ca: api.caPem }, connections: 32 }),
    go: { ca: files('api-ca.pem', api.caPem), token: api.admin.token },
  },
  {
    name: 'kport kube login',
    url: kportUrl,
    headers: {},
    agent: new Agent({ connect: tls, connections: 32 }),
    go: { ca: files('kport-ca.pem', tls.ca), cert: files('kport-cert.pem', tls.cert), key: files('kport-key.pem', tls.key), pid: kport.pid },
  },
  {
    name: 'through the server',
    url: through.url,
    headers: {},
    agent: new Agent({ connect: through.tls, connections: 32 }),
    go: { ...through.files, pid: serverPid, pids: [agentPid] },
  },
  { name: 'kubectl proxy', url: kubectlProxy.url, headers: {}, agent: new Agent({ connections: 32 }), go: { pid: kubectlProxy.proc.pid } },
  // References for the API server's share: the same impersonation kport asks for, without kport.
  {
    name: 'direct, impersonating',
    url: api.server,
    headers: { authorization: `Bearer ${api.proxy.token}`, ...impersonating },
    agent: new Agent({ connect: { ca: api.caPem }, connections: 32 }),
    go: { ca: files('api-ca.pem', api.caPem), token: api.proxy.token, headers: Object.fromEntries(Object.entries(impersonating).map(([k, v]) => [k, [v]])) },
  },
  { name: 'kubectl proxy --as', url: kubectlAs.url, headers: {}, agent: new Agent({ connections: 32 }), go: { pid: kubectlAs.proc.pid } },
];

async function get(t: (typeof targets)[number]): Promise<void> {
  const res = await request(`${t.url}${PATH}`, { headers: t.headers, dispatcher: t.agent });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}`);
}

/** `count` watches over `connections` HTTP/2 connections. */
async function holdWatches(origin: string, prefix: string, connectTls: object, connections: number, count = 500): Promise<() => void> {
  const sessions = Array.from({ length: connections }, () => h2connect(origin, connectTls));
  const streams = await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<ReturnType<(typeof sessions)[number]['request']>>((resolve, reject) => {
          const s = sessions[i % connections]!.request({
            ':path': `${prefix}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=600&labelSelector=w%3D${i}`,
          });
          s.on('data', () => {});
          s.on('error', reject);
          s.on('response', (h) => (h[':status'] === 200 ? resolve(s) : reject(new Error(`watch ${i}: HTTP ${h[':status']}`))));
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 3000));
  return () => {
    for (const s of streams) s.close();
    for (const s of sessions) s.close();
  };
}
// 500 watches on one HTTP/2 connection, as k9s holds them; through the server, the 250 a person may hold
// open there (MAX_REQUESTS_PER_PERSON is 256), on 16 connections.
const rss = () => rssOf(kport.pid!);
const endLocal = await holdWatches(new URL(kportUrl).origin, new URL(kportUrl).pathname, { ...tls, servername: 'localhost' }, 1);
const during = rss();
endLocal();
const watchLine = `kport RSS: ${idleRss.toFixed(0)} MiB at start, ${during.toFixed(0)} MiB holding 500 watches on one HTTP/2 connection`;
const serverRss = () => ({ server: rssOf(serverPid), agent: rssOf(agentPid) });
const serverIdle = serverRss();
const endServer = await holdWatches(new URL(through.url).origin, new URL(through.url).pathname, through.tls, 16, 250);
const serverWatching = serverRss();
endServer();
const mib = (r: { server: number; agent: number }) => `${(r.server + r.agent).toFixed(0)} MiB (server ${r.server.toFixed(0)} + agent ${r.agent.toFixed(0)})`;
const serverWatchLine = `Through the server: ${mib(serverIdle)} before, ${mib(serverWatching)} holding 250 watches (16 HTTP/2 connections of the person, one tunnel)`;

// 100 idle exec -it sessions through a server and agent of their own (fresh processes: the memory is the sessions').
const execLine = await holdExecSessions(api, 100);

interface Result {
  proto: string;
  p50: number;
  p99: number;
  rps: number[];
  /** kport's CPU per request in each of its 32-client slots. */
  cpuPerRequest?: number[];
}

// Every path is measured in turn, many times, so that the noise of a shared machine falls on all
// of them alike: latency in blocks of 21 sequential requests (the first of each block, made after
// another path had the machine, not counted), throughput in 4 slots of 3 s with 32 clients.
// Before that, each path serves 200 requests and one 3 s slot under load, not counted.
const N = 2000;
const BLOCK = 21;
const SLOTS = 4;
const SLOT_MS = 3000;

/** The Go client: client-go's transport, all paths in one process. */
function viaGo(): Record<string, Result> {
  const spec = targets.map((t) => ({ name: t.name, url: `${t.url}${PATH}`, ...t.go }));
  const out = JSON.parse(
    execFileSync(goClient, [JSON.stringify(spec), String(N), String(BLOCK), '32', String(SLOTS), `${SLOT_MS}ms`], { encoding: 'utf8' }),
  ) as Array<{
    name: string;
    proto: string;
    p50_ms: number;
    p99_ms: number;
    rps: number[];
    process_cpu_ms_per_request?: number[];
  }>;
  return Object.fromEntries(
    out.map((r) => [
      r.name,
      { proto: r.proto, p50: r.p50_ms, p99: r.p99_ms, rps: r.rps, ...(r.process_cpu_ms_per_request && { cpuPerRequest: r.process_cpu_ms_per_request }) },
    ]),
  );
}

/** undici over HTTP/1.1 keep-alive, the same schedule. */
async function viaUndici(): Promise<Record<string, Result>> {
  const slot = async (t: (typeof targets)[number]) => {
    let count = 0;
    const until = performance.now() + SLOT_MS;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (performance.now() < until) {
          await get(t);
          count++;
        }
      }),
    );
    return count / (SLOT_MS / 1000);
  };
  for (const t of targets) {
    for (let i = 0; i < 200; i++) await get(t);
    await slot(t);
  }
  const latencies = new Map(targets.map((t) => [t.name, [] as number[]]));
  for (let r = 0; r < N / (BLOCK - 1); r++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + r) % targets.length]!;
      for (let b = 0; b < BLOCK; b++) {
        const start = performance.now();
        await get(t);
        if (b > 0) latencies.get(t.name)!.push(performance.now() - start);
      }
    }
  }
  const rps = new Map(targets.map((t) => [t.name, [] as number[]]));
  for (let s = 0; s < SLOTS; s++) {
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(k + s) % targets.length]!;
      rps.get(t.name)!.push(await slot(t));
    }
  }
  return Object.fromEntries(
    targets.map((t) => [
      t.name,
      { proto: 'HTTP/1.1', p50: median(latencies.get(t.name)!), p99: percentile(latencies.get(t.name)!, 99), rps: rps.get(t.name)! },
    ]),
  );
}

const results = { go: viaGo(), undici: await viaUndici() };
const lines = [
  '| client | path | protocol | p50 ms (1 client) | p99 ms | req/s (32 clients) | vs direct | vs kubectl proxy |',
  '|---|---|---|---|---|---|---|---|',
];
for (const client of ['go', 'undici'] as const) {
  const rpsOf = (name: string) => median(results[client][name]!.rps);
  for (const t of targets) {
    const r = results[client][t.name]!;
    lines.push(
      row([
        client === 'go' ? 'Go net/http (client-go)' : 'undici',
        t.name,
        r.proto,
        r.p50,
        r.p99,
        rpsOf(t.name),
        `${(rpsOf(t.name) / rpsOf('direct')).toFixed(2)}x`,
        `${(rpsOf(t.name) / rpsOf('kubectl proxy')).toFixed(2)}x`,
      ]),
    );
  }
}
const cpuOf = (name: string) => {
  const cpu = results.go[name]!.cpuPerRequest!;
  return `${name} ${median(cpu).toFixed(3)} ms (slots: ${cpu.map((c) => c.toFixed(3)).join(', ')})`;
};
const cpuLine = `CPU per proxied request (Go client, 32 clients, from /proc), medians: ${['kport kube login', 'through the server', 'kubectl proxy', 'kubectl proxy --as'].map(cpuOf).join('; ')} (through the server: server + agent)`;
const slotsLine = `req/s per slot, Go client: ${targets.map((t) => `${t.name} ${results.go[t.name]!.rps.map((r) => r.toFixed(0)).join('/')}`).join('; ')}`;
// The goals of issue 21: the server's added p50 at most 2x kube login's; 32-client throughput at least 0.5x direct.
const goalLines = (['go', 'undici'] as const).map((client) => {
  const r = results[client];
  const added = (name: string) => r[name]!.p50 - r.direct!.p50;
  const rpsOf = (name: string) => median(r[name]!.rps);
  return `${client === 'go' ? 'Go' : 'undici'}: added p50 over direct: kube login ${added('kport kube login').toFixed(2)} ms, through the server ${added('through the server').toFixed(2)} ms (${(added('through the server') / added('kport kube login')).toFixed(2)}x; goal <= 2x); throughput through the server ${(rpsOf('through the server') / rpsOf('direct')).toFixed(2)}x direct (goal >= 0.5x)`;
});

// New sessions per second, as a fresh `kubectl get` makes them: a new TLS connection, /api, the GET.
const SESSION_WORKERS = 16;
const sessionTargets = targets.filter((t) => ['direct', 'kport kube login', 'through the server'].includes(t.name));
const sessionSpec = sessionTargets.map((t) => ({ name: t.name, url: `${t.url}${PATH}`, discovery: `${t.url}/api`, ...t.go }));
const sessionOut = JSON.parse(
  execFileSync(goClient, ['sessions', JSON.stringify(sessionSpec), String(SESSION_WORKERS), String(SLOTS), `${SLOT_MS}ms`], { encoding: 'utf8' }),
) as Array<{ name: string; proto: string; sessions_per_s: number[]; p50_ms: number; process_cpu_ms_per_session?: number[] }>;
const sessionLines = [
  '| path | protocol | sessions/s (16 workers) | per slot | session p50 ms | proxy CPU per session ms | vs direct |',
  '|---|---|---|---|---|---|---|',
];
const directSessions = median(sessionOut.find((r) => r.name === 'direct')!.sessions_per_s);
for (const r of sessionOut) {
  const perS = median(r.sessions_per_s);
  sessionLines.push(
    row([
      r.name,
      r.proto,
      perS,
      r.sessions_per_s.map((x) => x.toFixed(0)).join('/'),
      r.p50_ms,
      r.process_cpu_ms_per_session ? median(r.process_cpu_ms_per_session).toFixed(2) : '-',
      `${(perS / directSessions).toFixed(2)}x`,
    ]),
  );
}

kport.kill('SIGINT');
kubectlProxy.proc.kill('SIGTERM');
kubectlAs.proc.kill('SIGTERM');
await Promise.all([kport, kubectlProxy.proc, kubectlAs.proc, through.stop()]);
await api.stop();
process.stdout.write(
  `${lines.join('\n')}\n\n${goalLines.join('\n')}\n${cpuLine}\n${slotsLine}\n${watchLine}\n${serverWatchLine}\n\n${sessionLines.join('\n')}\n\n${execLine}\nnode ${process.version}, ${new Date().toISOString()}\n`,
);
