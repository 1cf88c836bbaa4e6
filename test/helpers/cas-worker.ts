// One writer of the multi-process compare-and-swap test: increments KEY N times; prints its conflicts.
// usage: cas-worker.ts sqlite:PATH|etcd:URL[,URL]@PREFIX KEY N
import type { Backend } from '../../src/backend/backend.ts';

const [target, key, count] = process.argv.slice(2) as [string, string, string];
let backend: Backend;
if (target.startsWith('sqlite:')) {
  const { SqliteBackend } = await import('../../src/backend/sqlite.ts');
  backend = await SqliteBackend.open(target.slice('sqlite:'.length));
} else {
  const [peers, prefix] = target.slice('etcd:'.length).split('@') as [string, string];
  const { EtcdBackend } = await import('../../src/backend/etcd.ts');
  backend = await EtcdBackend.connect({ type: 'etcd', peers: peers.split(','), prefix });
}
let conflicts = 0;
for (let i = 0; i < Number(count); i++) {
  for (;;) {
    const current = await backend.get(key);
    const next = String(Number(current?.value ?? '0') + 1);
    const ok = current ? await backend.compareAndSwap(key, next, current.revision) : await backend.create(key, next);
    if (ok) break;
    conflicts++;
  }
}
await backend.close();
process.stdout.write(`${conflicts}\n`);
