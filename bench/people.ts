// `kport kube ls` with 1,000 clusters through the server (issue 20), logged in as an `access`
// person, against the same command in local mode on the server's own store, in the same run:
// each a whole process, taken in turn (local, then through the server) so the noise of this
// shared machine falls on both alike. Goal: through the server within 1.5x of local.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { invitedPerson } from '../test/helpers/login.ts';
import { startServer } from '../test/helpers/network.ts';
import { KPORT, median, percentile, row } from './lib.ts';

const CLUSTERS = 1000;
const RUNS = Number(process.argv[2] ?? 21);
const server = await startServer();
try {
  const setup = join(server.dir, 'clusters.yaml');
  const regions = ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-south-1'];
  writeFileSync(
    setup,
    Array.from({ length: CLUSTERS }, (_, i) =>
      stringify({
        kind: 'kube_cluster',
        version: 'v3',
        metadata: { name: `cluster-${String(i).padStart(4, '0')}`, labels: { env: i % 2 ? 'prod' : 'dev', region: regions[i % 4]!, team: `team-${i % 17}` } },
        spec: { aws: { name: `cluster-${i}`, region: regions[i % 4]!, account_id: '123456789012' } },
      }),
    ).join('---\n'),
  );
  const created = await server.kport(['create', '-f', setup]);
  if (created.exitCode !== 0) throw new Error(String(created.stderr));
  // The person's roles: `access` (every cluster, as local mode shows them all to the server's admin).
  const person = await invitedPerson(server, 'bench', ['access']);
  // No kubeconfig for either: kube ls reads only its current-context line.
  const kubeconfig = join(server.dir, 'no-kubeconfig');
  // Local mode on the server's own store, for a user whose role allows every cluster, as startup.ts does.
  const localConfig = join(server.dir, 'local.yaml');
  writeFileSync(
    localConfig,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(server.dir, 'data') },
      roles: [{ name: 'all', kubernetes_labels: { '*': '*' } }],
      users: [{ name: 'bench', roles: ['all'] }],
    }),
  );
  const local = { HOME: server.dir, USER: 'bench', LOGNAME: 'bench', PATH: process.env.PATH ?? '', KPORT_CONFIG: localConfig, KUBECONFIG: kubeconfig };
  const remote = { HOME: person.home, PATH: process.env.PATH ?? '', KUBECONFIG: kubeconfig };
  const args = (env: NodeJS.ProcessEnv) => ['kube', 'ls', '-o', 'json', ...(env === local ? ['--user', 'bench'] : [])];
  const count = (env: NodeJS.ProcessEnv) => (JSON.parse(execFileSync(process.execPath, [KPORT, ...args(env)], { env, encoding: 'utf8' })) as unknown[]).length;
  const shown = { local: count(local), remote: count(remote) };
  if (shown.local !== CLUSTERS || shown.remote !== CLUSTERS)
    throw new Error(`kube ls shows ${shown.local} clusters locally and ${shown.remote} through the server, not ${CLUSTERS} each`);
  const time = (env: NodeJS.ProcessEnv) => {
    const start = process.hrtime.bigint();
    execFileSync(process.execPath, [KPORT, ...args(env)], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  // Warm the page cache, the server's JIT and its store before counting.
  for (let i = 0; i < 3; i++) time(local), time(remote);
  const times = { local: [] as number[], remote: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    times.local.push(time(local));
    times.remote.push(time(remote));
  }
  const ratio = median(times.remote) / median(times.local);
  process.stdout.write(
    [
      '### kport kube ls, 1,000 clusters: through the server vs local',
      '',
      `${RUNS} runs each, whole \`kport kube ls -o json\` processes taken in turn. Goal: through the server within 1.5x of local.`,
      '',
      '| where | clusters shown | median ms | p90 ms | min ms |',
      '|---|---|---|---|---|',
      row(["local (the server's sqlite store)", shown.local, median(times.local), percentile(times.local, 90), Math.min(...times.local)]),
      row(["through the server (an access person's profile)", shown.remote, median(times.remote), percentile(times.remote, 90), Math.min(...times.remote)]),
      '',
      `through the server / local: ${ratio.toFixed(2)}x`,
      `node ${process.version}, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
      '',
    ].join('\n'),
  );
} finally {
  await server.stop();
}
