// Proxy peering (issue 29): the path when the person's server is not the agent's. Two `kport server
// start` on one etcd (the same seal.key); a Kubernetes agent tunnelled to server B only
// (bench/server-path.ts); one person logged in to B, another to A. Side by side in one run, with the
// Go client of bench/proxy.ts (client-go's HTTP/2 transport): direct to the apiserver, the one-server
// path (person -> B -> agent), and the peered path (person -> A -> B -> agent). p50/p99 of a small
// GET at 1 client, requests/s with 32, CPU per request of the kport processes on the path.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { request, Agent } from 'undici';
import { invitedPerson } from '../test/helpers/login.ts';
import { startServer } from '../test/helpers/network.ts';
import { startEtcd } from '../test/peers/etcd.ts';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir, waitFor } from '../test/peers/process.ts';
import { peersCacheDir } from '../test/peers/versions.ts';
import { KPORT, median, row } from './lib.ts';
import { startServerPath } from './server-path.ts';

const PATH = '/api/v1/namespaces/default';
const [N, BLOCK, SLOTS, SLOT_MS] = [2000, 21, 4, 3000];
const goClient = join(peersCacheDir(), 'bench', 'h2client');
mkdirSync(join(peersCacheDir(), 'bench'), { recursive: true });
execFileSync('go', ['build', '-o', goClient, '.'], { cwd: fileURLToPath(new URL('./h2client/', import.meta.url)), stdio: 'inherit' });

const api = await startKubeApiserver({ kubeletClient: true });
const home = tempDir('bench-peering');
// The agents' identity may impersonate (as in bench/proxy.ts).
await execa(process.execPath, [KPORT, 'rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], {
  env: { HOME: home, PATH: process.env.PATH ?? '', KUBECONFIG: api.kubeconfig(api.admin) },
});
const etcd = await startEtcd();
const storage = { type: 'etcd', peers: etcd.endpoints, prefix: '/kport-bench' };
const b = await startServerPath(api, { storage });
const a = await startServer({ storage, sealKeyFrom: b.server });
const person = await invitedPerson(a, 'bench-a', ['bench-admin']);
const profile = join(person.home, '.kport', 'profiles', a.address.replace(':', '_'));
const aFiles = { ca: join(profile, 'ca.pem'), cert: join(profile, 'cert.pem'), key: join(profile, 'key.pem') };
const aUrl = `https://${a.address}/k/test`;
const probe = new Agent({ connect: { ca: readFileSync(aFiles.ca), cert: readFileSync(aFiles.cert), key: readFileSync(aFiles.key) } });
await waitFor(
  'the cluster served through A',
  async () => {
    const res = await request(`${aUrl}${PATH}`, { dispatcher: probe }).catch(() => undefined);
    await res?.body.text();
    return res?.statusCode === 200 || undefined;
  },
  { timeoutMs: 60_000 },
);
await probe.close();

const caFile = join(home, 'api-ca.pem');
writeFileSync(caFile, api.caPem);
const bPid = b.server.proc!.pid!;
const agentPid = b.agent.pid!;
const spec = [
  { name: 'direct', url: `${api.server}${PATH}`, ca: caFile, token: api.admin.token },
  { name: 'one server (person -> B -> agent)', url: `${b.url}${PATH}`, ...b.files, pid: bPid, pids: [agentPid] },
  { name: 'peered (person -> A -> B -> agent)', url: `${aUrl}${PATH}`, ...aFiles, pid: a.proc!.pid!, pids: [bPid, agentPid] },
];
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
const by = Object.fromEntries(out.map((r) => [r.name, r]));
const direct = by.direct!;
const one = by[spec[1]!.name]!;
process.stdout.write(
  `${row(['path', 'protocol', 'p50 ms (1 client)', 'p99 ms', 'added p50 ms', 'req/s (32 clients)', 'vs one server', 'kport CPU ms/request'])}\n`,
);
process.stdout.write(`${row(['---', '---', '---', '---', '---', '---', '---', '---'])}\n`);
for (const r of out) {
  const rps = median(r.rps);
  process.stdout.write(
    `${row([
      r.name,
      r.proto,
      r.p50_ms,
      r.p99_ms,
      r.p50_ms - direct.p50_ms,
      rps,
      r === direct ? '-' : `${(rps / median(one.rps)).toFixed(2)}x`,
      r.process_cpu_ms_per_request ? median(r.process_cpu_ms_per_request) : '-',
    ])}\n`,
  );
}
process.stdout.write(`\nslots (req/s): ${out.map((r) => `${r.name}: ${r.rps.map(Math.round).join(', ')}`).join('; ')}\n`);
await a.stop();
await b.stop();
await api.stop();
await etcd.stop();
