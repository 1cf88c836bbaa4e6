// Bundles the CLI for start-up speed: one entry module and a few shared chunks instead of a
// hundred small modules, with every lazy import() kept lazy (code splitting). Dependencies stay
// in node_modules. `tsc` type-checks; this writes dist/.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  packages: 'external',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  logLevel: 'warning',
});
