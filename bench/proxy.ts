// Side by side against one kube-apiserver: direct, through `kport kube login`, through `kubectl proxy`.
// Two clients: a Go program using net/http as client-go does (HTTP/2 over TLS, one shared
// connection; HTTP/1.1 to kubectl proxy's plain http://), and undici over HTTP/1.1. p50/p99 of a
// small GET at 1 client, requests/s with 32, two rounds interleaved; kport's CPU per proxied
// request from /proc; kport's RSS holding 500 watches on one HTTP/2 connection.
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

const PATH = '/api/v1/namespaces/default';
// The Go client is built from bench/h2client with the toolchain the test peers are built with.
const goClient = join(peersCacheDir(), 'bench', 'h2client');
mkdirSync(join(peersCacheDir(), 'bench'), { recursive: true });
execFileSync('go', ['build', '-o', goClient, '.'], { cwd: fileURLToPath(new URL('./h2client/', import.meta.url)), stdio: 'inherit' });
const api = await startKubeApiserver();
const home = tempDir('bench-proxy');
const env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml') };
writeFileSync(env.KPORT_CONFIG, stringify({ version: 'v3', teleport: { data_dir: join(home, 'data') }, roles: [{ name: 'admin', kubernetes_labels: { '*': '*' }, kubernetes_groups: ['system:masters'] }], users: [{ name: 'bench', roles: ['admin'] }] }));
await execa(process.execPath, [KPORT, 'rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], { env: { ...env, KUBECONFIG: api.kubeconfig(api.admin) } });
writeFileSync(join(home, 'c.yaml'), stringify({ kind: 'kube_cluster', metadata: { name: 'bench' }, spec: { kubeconfig: readFileSync(api.kubeconfig(api.proxy), 'utf8') } }));
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
const kubectlProxy = execa(BINARIES.kubectl(), ['--kubeconfig', api.kubeconfig(api.admin), 'proxy', '--port=0'], { reject: false });
let kpOut = '';
kubectlProxy.stdout!.on('data', (c: Buffer) => (kpOut += c));
const kubectlUrl = `http://${await waitFor('kubectl proxy', async () => kpOut.match(/Starting to serve on (\S+)/)?.[1])}`;

const rssOf = (pid: number) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
const idleRss = rssOf(kport.pid!);

const files = (name: string, text: string | Buffer) => {
  const path = join(home, name);
  writeFileSync(path, text);
  return path;
};
const targets = [
  { name: 'direct', url: api.server, headers: { authorization: `Bearer ${api.admin.token}` }, agent: new Agent({ connect: { ca: api.caPem }, connections: 32 }), go: ['-ca', files('api-ca.pem', api.caPem), '-token', api.admin.token!] },
  { name: 'kport', url: kportUrl, headers: {}, agent: new Agent({ connect: tls, connections: 32 }), go: ['-ca', files('kport-ca.pem', tls.ca), '-cert', files('kport-cert.pem', tls.cert), '-key', files('kport-key.pem', tls.key)] },
  { name: 'kubectl proxy', url: kubectlUrl, headers: {}, agent: new Agent({ connections: 32 }), go: [] as string[] },
];

async function get(t: (typeof targets)[number]): Promise<void> {
  const res = await request(`${t.url}${PATH}`, { headers: t.headers, dispatcher: t.agent });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${t.name}: HTTP ${res.statusCode}`);
}

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

// 500 watches on one HTTP/2 connection, as k9s holds them.
const rss = () => rssOf(kport.pid!);
const session = h2connect(new URL(kportUrl).origin, { ...tls, servername: 'localhost' });
const prefix = new URL(kportUrl).pathname;
const streams = Array.from({ length: 500 }, (_, i) => {
  const s = session.request({ ':path': `${prefix}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=600&labelSelector=w%3D${i}` });
  s.on('data', () => {});
  s.on('error', () => {});
  return s;
});
await waitFor('500 watches to be open', async () => streams.every((s) => s.sentHeaders !== undefined), { timeoutMs: 30_000 });
await new Promise((r) => setTimeout(r, 3000));
const during = rss();
const watchLine = `kport RSS: ${idleRss.toFixed(0)} MiB at start, ${during.toFixed(0)} MiB holding 500 watches on one HTTP/2 connection`;
for (const s of streams) s.close();
session.close();


interface Result {
  p50: number;
  p99: number;
  rps: number;
  proto: string;
  cpuPerRequest?: number;
}

/** The Go client: client-go's transport. kport's CPU is read around its 32-client phase. */
function viaGo(t: (typeof targets)[number]): Result {
  const cpuBefore = cpuMs(kport.pid!);
  const out = JSON.parse(execFileSync(goClient, ['-url', `${t.url}${PATH}`, ...t.go, '-n', '1000', '-c', '32', '-d', '5s'], { encoding: 'utf8' }));
  const cpu = cpuMs(kport.pid!) - cpuBefore;
  return { p50: out.p50_ms, p99: out.p99_ms, rps: out.rps, proto: out.proto, ...(t.name === 'kport' && { cpuPerRequest: cpu / (out.requests + 1200) }) };
}

async function viaUndici(t: (typeof targets)[number]): Promise<Result> {
  for (let i = 0; i < 200; i++) await get(t);
  const latencies: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const s = performance.now();
    await get(t);
    latencies.push(performance.now() - s);
  }
  let count = 0;
  const until = performance.now() + 5000;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (performance.now() < until) {
        await get(t);
        count++;
      }
    }),
  );
  return { p50: median(latencies), p99: percentile(latencies, 99), rps: count / 5, proto: 'HTTP/1.1' };
}

const rounds: Array<Record<string, Result>> = [];
for (let round = 0; round < 2; round++) {
  const results: Record<string, Result> = {};
  for (const t of targets) {
    results[`go ${t.name}`] = viaGo(t);
    results[`undici ${t.name}`] = await viaUndici(t);
  }
  rounds.push(results);
}
const lines = ['| client | path | protocol | p50 ms (1 client) | p99 ms | req/s (32 clients) | vs direct | vs kubectl proxy |', '|---|---|---|---|---|---|---|---|'];
const med = (key: string, field: 'p50' | 'p99' | 'rps') => median(rounds.map((r) => r[key]![field]));
for (const client of ['go', 'undici']) {
  for (const t of targets) {
    const key = `${client} ${t.name}`;
    lines.push(row([client === 'go' ? 'Go net/http (client-go)' : 'undici', t.name, rounds[0]![key]!.proto, med(key, 'p50'), med(key, 'p99'), med(key, 'rps'), `${(med(key, 'rps') / med(`${client} direct`, 'rps')).toFixed(2)}x`, `${(med(key, 'rps') / med(`${client} kubectl proxy`, 'rps')).toFixed(2)}x`]));
  }
}
const cpu = rounds.map((r) => r['go kport']!.cpuPerRequest!);
const cpuLine = `kport CPU per proxied request (Go client, from /proc): ${cpu.map((c) => c.toFixed(3)).join(' and ')} ms in the two rounds`;

kport.kill('SIGINT');
kubectlProxy.kill('SIGTERM');
await Promise.all([kport, kubectlProxy]);
await api.stop();
process.stdout.write(`${lines.join('\n')}\n\nmedians of two interleaved rounds\n${cpuLine}\n${watchLine}\nnode ${process.version}, ${new Date().toISOString()}\n`);
