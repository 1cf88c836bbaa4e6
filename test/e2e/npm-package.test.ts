// The npm package as a user gets it: `npm pack` in a checkout that was never built (as after
// `npm ci`: no dist/, so pack must build it), then `npm i -g` of the tarball into an empty prefix,
// offline. One package, no install scripts, no warnings; the installed kport runs with nothing else
// beside it (no node_modules anywhere above it): version, and discover run --once against moto.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { createClusters } from '../peers/aws.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, tempDir } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the npm package', { concurrency: false, timeout: 180_000 }, () => {
  let prefix: string;
  let install: { stdout: string; stderr: string };
  let moto: Moto | undefined;
  // An empty npm cache (nothing to lean on), and for kport itself only Node on PATH.
  const npmEnv = (home: string) => ({ HOME: home, PATH: process.env.PATH ?? '', npm_config_cache: join(home, 'npm-cache') });
  const env = (home: string) => ({ HOME: home, PATH: dirname(process.execPath) });
  const kport = (home: string, args: string[], extra: Record<string, string> = {}) =>
    execa(join(prefix, 'bin', 'kport'), args, { cwd: home, env: { ...env(home), ...extra }, extendEnv: false, reject: false });

  before(async () => {
    const work = tempDir('npm-package');
    // The checkout's own files (tracked, and new ones not ignored), without dist/ or any build output, and its installed dependencies.
    const checkout = join(work, 'checkout');
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' }).split('\0');
    for (const file of files.filter((f) => f && f !== 'node_modules' && existsSync(join(root, f)))) {
      mkdirSync(dirname(join(checkout, file)), { recursive: true });
      cpSync(join(root, file), join(checkout, file));
    }
    assert.equal(existsSync(join(checkout, 'dist')), false);
    symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'));
    const packed = await execa('npm', ['pack', '--silent', '--pack-destination', work], { cwd: checkout, env: npmEnv(work), extendEnv: false });
    prefix = join(work, 'prefix');
    const res = await execa('npm', ['install', '--global', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', join(work, packed.stdout.trim())], {
      cwd: work,
      env: npmEnv(work),
      extendEnv: false,
    });
    install = { stdout: res.stdout, stderr: res.stderr };
  });
  after(() => moto?.stop());

  test('installs one package, with no warnings and no install scripts', () => {
    assert.match(install.stdout, /added 1 package/);
    assert.equal(install.stderr, '');
    assert.deepEqual(readdirSync(join(prefix, 'lib', 'node_modules')), ['kport']);
    assert.equal(existsSync(join(prefix, 'lib', 'node_modules', 'kport', 'node_modules')), false);
  });

  test('the installed kport runs: version, completions, discover run --once against moto', async (t) => {
    const home = tempDir('npm-home');
    const ran = await kport(home, ['version', '-o', 'json']);
    assert.equal(ran.exitCode, 0, String(ran.stderr));
    const version = JSON.parse(String(ran.stdout));
    assert.equal(version.runtime, 'node');
    assert.equal((await kport(home, ['completion', 'bash'])).exitCode, 0);
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
    await createClusters(moto, [{ name: 'n0', region: 'us-east-1', tags: { env: 'npm' } }]);
    const config = join(home, 'kport.yaml');
    writeFileSync(
      config,
      stringify({
        version: 'v3',
        teleport: { data_dir: join(home, 'data') },
        discovery_service: { enabled: 'yes', discovery_group: 'npm', aws: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'npm' } }] },
      }),
    );
    const token = await kport(home, ['tokens', 'add', '--type=discovery', '--format=text'], { KPORT_CONFIG: config });
    assert.equal(token.exitCode, 0, String(token.stderr));
    const run = await kport(home, ['discover', 'run', '--once', '--token', String(token.stdout).trim()], { ...moto.env, KPORT_CONFIG: config });
    assert.equal(run.exitCode, 0, String(run.stderr));
    const got = JSON.parse(String((await kport(home, ['get', 'kube_cluster', '-o', 'json'], { KPORT_CONFIG: config })).stdout));
    assert.deepEqual(
      got.map((c: { spec: { aws: { name: string } } }) => c.spec.aws.name),
      ['n0'],
    );
  });
});
