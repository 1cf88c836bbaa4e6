// Where `kport kube login` spends its CPU under load: the proxy runs with `node --cpu-prof` while
// the Go client (client-go's transport, HTTP/2) drives 32 concurrent GETs through it; prints the
// top frames by self time, with idle time left out. `node bench/profile-proxy.ts [seconds]`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir, waitFor } from '../test/peers/process.ts';
import { peersCacheDir } from '../test/peers/versions.ts';
import { KPORT } from './lib.ts';

const seconds = Number(process.argv[2] ?? 10);
const goClient = join(peersCacheDir(), 'bench', 'h2client');
mkdirSync(join(peersCacheDir(), 'bench'), { recursive: true });
execFileSync('go', ['build', '-o', goClient, '.'], { cwd: fileURLToPath(new URL('./h2client/', import.meta.url)), stdio: 'inherit' });

const api = await startKubeApiserver();
const home = tempDir('profile-proxy');
const profiles = join(home, 'profiles');
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
writeFileSync(
  join(home, 'c.yaml'),
  stringify({ kind: 'kube_cluster', metadata: { name: 'bench' }, spec: { kubeconfig: readFileSync(api.kubeconfig(api.admin), 'utf8') } }),
);
await execa(process.execPath, [KPORT, 'create', '-f', join(home, 'c.yaml')], { env });
const kport = execa(process.execPath, ['--cpu-prof', '--cpu-prof-dir', profiles, KPORT, 'kube', 'login', 'bench', '--user', 'bench'], { env, reject: false });
let out = '';
kport.stdout!.on('data', (c: Buffer) => (out += c));
const kc = parse(readFileSync(await waitFor('kport ready', async () => out.match(/^export KUBECONFIG=(.+)$/m)?.[1]), 'utf8'));
const file = (name: string, b64: string) => {
  writeFileSync(join(home, name), Buffer.from(b64, 'base64'));
  return join(home, name);
};
// One path, 32 clients for the whole profile (after the client's own warm-up).
const target = {
  name: 'kport',
  url: `${kc.clusters[0].cluster.server}/api/v1/namespaces/default`,
  ca: file('ca.pem', kc.clusters[0].cluster['certificate-authority-data']),
  cert: file('cert.pem', kc.users[0].user['client-certificate-data']),
  key: file('key.pem', kc.users[0].user['client-key-data']),
};
const load = execFileSync(goClient, [JSON.stringify([target]), '40', '21', '32', '1', `${seconds}s`], { encoding: 'utf8' });
kport.kill('SIGINT');
await kport;
await api.stop();

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const profile = JSON.parse(readFileSync(join(profiles, readdirSync(profiles)[0]!), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let busy = 0;
profile.samples.forEach((id, i) => {
  const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
  if (functionName === '(idle)') return;
  const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/');
  const key = `${functionName || '(anonymous)'} ${where}${where ? `:${lineNumber + 1}` : ''}`;
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(key, (self.get(key) ?? 0) + dt);
  busy += dt;
});
process.stdout.write(`load: ${load}`);
process.stdout.write('| self % of busy CPU | frame |\n|---|---|\n');
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 20)) process.stdout.write(`| ${((100 * t) / busy).toFixed(1)} | ${key} |\n`);
