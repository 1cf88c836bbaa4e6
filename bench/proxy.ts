// Side by side against one kube-apiserver: direct, through `kport kube login`, through `kubectl proxy`.
// p50/p99 of a small GET, requests/s with 32 concurrent clients, kport's CPU per request, and
// kport's RSS holding 500 concurrent watches on one HTTP/2 connection.
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { Agent, request } from 'undici';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir, waitFor } from '../test/peers/process.ts';
import { BINARIES } from '../test/peers/versions.ts';
import { KPORT, median, percentile, row } from './lib.ts';

const PATH = '/api/v1/namespaces/default';
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

const targets = [
  { name: 'direct', url: api.server, headers: { authorization: `Bearer ${api.admin.token}` }, agent: new Agent({ connect: { ca: api.caPem }, connections: 32 }) },
  { name: 'kport', url: kportUrl, headers: {}, agent: new Agent({ connect: tls, connections: 32 }) },
  { name: 'kubectl proxy', url: kubectlUrl, headers: {}, agent: new Agent({ connections: 32 }) },
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


const lines = ['| path | p50 ms | p99 ms | req/s (32 clients) | vs direct |', '|---|---|---|---|---|'];
const results: Record<string, { p50: number; p99: number; rps: number }> = {};
for (let round = 0; round < 2; round++) {
  for (const t of targets) {
    for (let i = 0; i < 200; i++) await get(t);
    const latencies: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = performance.now();
      await get(t);
      latencies.push(performance.now() - s);
    }
    const cpuBefore = t.name === 'kport' ? cpuMs(kport.pid!) : 0;
    let count = 0;
    const until = performance.now() + 5000;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (performance.now() < until) {
        await get(t);
        count++;
      }
    }));
    if (t.name === 'kport') process.stderr.write(`kport CPU per request: ${((cpuMs(kport.pid!) - cpuBefore) / count).toFixed(3)} ms (${count} requests)\n`);
    if (round === 1) results[t.name] = { p50: median(latencies), p99: percentile(latencies, 99), rps: count / 5 };
  }
}
for (const t of targets) {
  const r = results[t.name]!;
  lines.push(row([t.name, r.p50, r.p99, r.rps, `${(r.rps / results.direct!.rps).toFixed(2)}x`]));
}

kport.kill('SIGINT');
kubectlProxy.kill('SIGTERM');
await Promise.all([kport, kubectlProxy]);
await api.stop();
process.stdout.write(`${lines.join('\n')}\n\n${watchLine}\nnode ${process.version}, ${new Date().toISOString()}\n`);
