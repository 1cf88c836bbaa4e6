// Bundles the CLI into dist/ with every dependency inside it (scripts/embed.ts), so the npm package
// installs as one package with nothing to fetch or build. For start-up speed: one entry module and
// a few shared chunks, with every lazy import() kept lazy (code splitting). `tsc` type-checks.
import { readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';
import { embedPlugin } from './embed.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

// dist/bin (the single executables, scripts/sea.ts) is kept: it is rebuilt only when its inputs change.
for (const old of ['main.js', 'chunks']) rmSync(new URL(`../dist/${old}`, import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  // CommonJS dependencies inside an ES module bundle still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __kportCreateRequire } from 'node:module'; const require = __kportCreateRequire(import.meta.url);" },
  // Whitespace and syntax only: the package is 13 MB instead of 27 MB, and names stay readable in
  // --debug stack traces (identifier minifying would take it to 9 MB and lose them).
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [embedPlugin({ version })],
  logLevel: 'warning',
});
