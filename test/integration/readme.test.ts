// The README's quick start, run as printed (issue 19): a newcomer pastes it top to bottom and sees
// clusters. Here AWS is moto; the block's first line (npm ci && npm run build) has already run.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { createClusters } from '../peers/aws.ts';
import { MOTO_ACCOUNT, startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, tempDir } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Node first on PATH, as the README assumes; npm and npx wherever the machine has them.
const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

function quickStart(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- test\/integration\/readme\.test\.ts runs this block against moto -->\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1];
  assert.ok(block, 'the README marks its quick start');
  return block.split('\n');
}

describe('the README quick start', { concurrency: false, timeout: 300_000 }, () => {
  let moto: Moto;
  before(async (t) => {
    if (havePeer(t as never, 'moto', [BINARIES.motoServer()])) moto = await startMoto();
  });
  after(() => moto?.stop());

  test("pasted top to bottom, it finds the account's clusters and leaves the token file 0600", async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    await createClusters(moto, [
      { name: 'alpha', region: 'us-east-1', tags: { env: 'prod' } },
      { name: 'beta', region: 'eu-west-1' },
    ]);
    const [first, ...rest] = quickStart();
    assert.equal(first, 'npm ci && npm run build', 'the build the test already has');
    // Inside the clone (npx finds kport there), in a directory git ignores.
    mkdirSync(join(ROOT, '.cache'), { recursive: true });
    const work = mkdtempSync(join(ROOT, '.cache', 'readme-'));
    try {
      // Offline: an npx that did not find the clone's kport must fail, not fetch a stranger's.
      const env = { ...moto.env, HOME: tempDir('readme-home'), PATH, npm_config_offline: 'true', npm_config_update_notifier: 'false' };
      const run = await execa('bash', ['-euo', 'pipefail', '-c', rest.join('\n')], { cwd: work, env, extendEnv: false, reject: false });
      assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`);
      const names = String(run.stdout)
        .split('\n')
        .map((l) => l.split('\t')[0]);
      assert.ok(names.includes(`alpha-eks-us-east-1-${MOTO_ACCOUNT}`), String(run.stdout));
      assert.ok(names.includes(`beta-eks-eu-west-1-${MOTO_ACCOUNT}`), String(run.stdout));
      assert.equal(statSync(join(work, 'quickstart', 'token')).mode & 0o777, 0o600, 'the token file is private');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

test('npm ci has no install scripts left unreviewed (npm 11 warns about each)', async () => {
  const ls = await execa('npm', ['install-scripts', 'ls'], {
    cwd: ROOT,
    env: { PATH, HOME: tempDir('npm-home'), npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    extendEnv: false,
    reject: false,
  });
  assert.equal(ls.exitCode, 0, String(ls.stderr));
  assert.equal(String(ls.stdout).trim(), 'No packages with unreviewed install scripts.');
});
