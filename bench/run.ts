// Runs every benchmark in turn (each needs the test peers: run `npm test` once first) and prints
// their tables; bench/README.md holds the recorded numbers.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const only = process.argv.slice(2);
for (const name of ['startup', 'discovery', 'proxy', 'failover', 'network', 'flood', 'login', 'people', 'tunnels', 'recordings', 'peering']) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stdout.write(`\n## ${name}\n\n`);
  execFileSync(process.execPath, [fileURLToPath(new URL(`./${name}.ts`, import.meta.url))], { stdio: ['ignore', 'inherit', 'inherit'] });
}
