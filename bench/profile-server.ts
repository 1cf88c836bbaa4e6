// Where the server and the Kubernetes agent spend their CPU under load (issue 21): both run with
// `node --cpu-prof` while the Go client (client-go's transport, HTTP/2) drives 32 concurrent GETs
// through the server, its tunnel and the agent to the apiserver; prints each process's top frames by
// self time, idle left out. `node bench/profile-server.ts [seconds] [--no-prof]`: --no-prof runs
// without the profiler and prints only server + agent CPU per request (for A/B runs of two builds).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir } from '../test/peers/process.ts';
import { peersCacheDir } from '../test/peers/versions.ts';
import { KPORT, procStat } from './lib.ts';
import { startServerPath } from './server-path.ts';

const seconds = Number(process.argv[2] ?? 10);
const profiling = !process.argv.includes('--no-prof');
const goClient = join(peersCacheDir(), 'bench', 'h2client');
mkdirSync(join(peersCacheDir(), 'bench'), { recursive: true });
execFileSync('go', ['build', '-o', goClient, '.'], { cwd: fileURLToPath(new URL('./h2client/', import.meta.url)), stdio: 'inherit' });

const api = await startKubeApiserver();
const home = tempDir('profile-server');
await execa(process.execPath, [KPORT, 'rbac', 'bootstrap', '--context', 'test', '--role-arn', 'arn:aws:iam::222222222222:role/kport-proxy'], {
  env: { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: join(home, 'kport.yaml'), KUBECONFIG: api.kubeconfig(api.admin) },
});
const profiles = join(home, 'profiles');
const prof = profiling ? `--cpu-prof --cpu-prof-dir=${profiles}` : '';
const path = await startServerPath(api, { serverEnv: { NODE_OPTIONS: prof }, ...(prof && { agentNodeOptions: prof }) });
const pids = { server: path.server.proc!.pid!, agent: path.agent.pid! };
const target = { name: 'through the server', url: `${path.url}/api/v1/namespaces/default`, ...path.files, pid: pids.server };
// Warm-up outside the count: startup, joins and the first connections are not per-request CPU.
if (!profiling) execFileSync(goClient, [JSON.stringify([target]), '40', '21', '32', '1', '2s'], { encoding: 'utf8' });
const before = Object.values(pids).map((pid) => procStat(pid).cpuMs);
const load = execFileSync(goClient, [JSON.stringify([target]), '40', '21', '32', '1', `${seconds}s`], { encoding: 'utf8' });
const [serverMs, agentMs] = Object.values(pids).map((pid, i) => procStat(pid).cpuMs - before[i]!);
await path.stop();
await api.stop();

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
process.stdout.write(`load: ${load}`);
const done = (JSON.parse(load) as Array<{ rps: number[] }>)[0]!.rps[0]! * seconds;
process.stdout.write(
  `CPU per request (/proc, after 2 s of warm-up): server ${(serverMs! / done).toFixed(3)} ms, agent ${(agentMs! / done).toFixed(3)} ms, both ${((serverMs! + agentMs!) / done).toFixed(3)} ms\n`,
);
if (!profiling) process.exit(0);
for (const [name, pid] of Object.entries(pids)) {
  const file = readdirSync(profiles).find((f) => f.includes(`.${pid}.`));
  if (!file) throw new Error(`no profile of the ${name} (pid ${pid}) in ${profiles}`);
  const profile = JSON.parse(readFileSync(join(profiles, file), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
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
  process.stdout.write(`\n${name}: ${(busy / 1000).toFixed(0)} ms busy\n| self % of busy CPU | frame |\n|---|---|\n`);
  for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`| ${((100 * t) / busy).toFixed(1)} | ${key} |\n`);
}
