import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { surfaceFiles } from '../../scripts/surface.ts';

test('completions/ and the command-tree snapshot match the command tree (run `npm run surface` after changing commands)', () => {
  for (const [path, text] of Object.entries(surfaceFiles())) {
    assert.equal(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'), text, `${path} is out of date: run npm run surface`);
  }
});

test('the bash completion script completes nouns, verbs, flags and kinds in a real bash', async () => {
  const { execFileSync } = await import('node:child_process');
  const complete = (...words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `source completions/kport.bash; COMP_WORDS=(${words.map((w) => `"${w}"`).join(' ')}); COMP_CWORD=${words.length - 1}; _kport; echo "\${COMPREPLY[@]}"`,
      ],
      {
        cwd: new URL('../..', import.meta.url),
        encoding: 'utf8',
      },
    ).trim();
  assert.equal(complete('kport', 'tok'), 'tokens');
  assert.equal(complete('kport', 'tokens', ''), 'add ls rm');
  assert.equal(complete('kport', 'tokens', 'add', '--t'), '--type --ttl');
  assert.equal(complete('kport', 'get', 'kube_c'), 'kube_cluster');
  assert.equal(complete('kport', 'get', 'kube'), 'kube_cluster kube_server');
});

test('bash completion: global options before the command, shells, choice values, and cluster names from the store', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, chmodSync, mkdirSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { SqliteBackend } = await import('../../src/backend/sqlite.ts');
  const { upsertResource } = await import('../../src/resources/store.ts');
  const home = mkdtempSync(join(tmpdir(), 'kport-complete-'));
  const config = join(home, 'x.yaml');
  writeFileSync(config, `version: v3\nteleport:\n  data_dir: ${join(home, 'data')}\n`);
  const store = await SqliteBackend.open(join(home, 'data', 'kport.db'));
  for (const name of ['prod-eks-us-east-1-222222222222', 'prod-eu', 'staging']) {
    await upsertResource(store, { kind: 'kube_cluster', version: 'v3', metadata: { name }, spec: { kubeconfig: 'x' } });
  }
  await store.close();
  // The script calls `kport` from PATH, as an installed kport is.
  const bin = join(home, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'kport'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(new URL('../../bin/kport.js', import.meta.url).pathname)} "$@"\n`,
  );
  chmodSync(join(bin, 'kport'), 0o755);
  const complete = (...words: string[]) =>
    execFileSync(
      'bash',
      [
        '-c',
        `source completions/kport.bash; COMP_WORDS=(${words.map((w) => `"${w}"`).join(' ')}); COMP_CWORD=${words.length - 1}; _kport; echo "\${COMPREPLY[@]}"`,
      ],
      {
        cwd: new URL('../..', import.meta.url),
        encoding: 'utf8',
        env: { PATH: `${bin}:${process.env.PATH}`, HOME: home },
      },
    ).trim();
  assert.equal(complete('kport', '--format', 'json', 'get', 'k'), 'kube_cluster kube_server');
  assert.equal(complete('kport', '-c', config, 'get', 'k'), 'kube_cluster kube_server');
  assert.equal(complete('kport', '--data-dir', '/tmp', 'get', 'tok'), 'token');
  assert.equal(complete('kport', 'completion', ''), 'bash zsh fish');
  assert.equal(complete('kport', 'get', 'kube_cluster', '--format', ''), 'text json yaml');
  assert.equal(complete('kport', '-o', 'y'), 'yaml');
  assert.equal(complete('kport', 'rbac', 'bootstrap', '--mode', ''), 'auto configmap access-entry');
  assert.equal(complete('kport', '-c', config, 'kube', 'login', 'prod'), 'prod-eks-us-east-1-222222222222 prod-eu');
  assert.equal(complete('kport', '-c', config, 'kube', 'credentials', 'st'), 'staging');
  assert.equal(complete('kport', '-c', config, 'get', 'kube_cluster/prod-e'), 'kube_cluster/prod-eks-us-east-1-222222222222 kube_cluster/prod-eu');
  assert.equal(complete('kport', '-c', config, 'rm', 'kube_cluster/s'), 'kube_cluster/staging');
  assert.equal(complete('kport', '-c', join(home, 'missing.yaml'), 'kube', 'login', ''), '', 'no store: nothing, and no error in the command line');
});

test('`get <TAB>` offers the kinds `get --help` lists, and each of them is one `get` takes', async () => {
  const { execFileSync } = await import('node:child_process');
  const { get } = await import('../../src/commands/resource/get.ts');
  const { lookupKind } = await import('../../src/commands/resource/registry.ts');
  const offered = execFileSync('bash', ['-c', 'source completions/kport.bash; COMP_WORDS=(kport get ""); COMP_CWORD=2; _kport; echo "${COMPREPLY[@]}"'], {
    cwd: new URL('../..', import.meta.url),
    encoding: 'utf8',
  })
    .trim()
    .split(' ');
  const listed = get.summary.replace(/^.*?: /, '').split(', ');
  assert.deepEqual(offered.sort(), [...listed].sort());
  assert.ok(listed.includes('audit') && listed.includes('agent'), get.summary);
  for (const name of listed) assert.doesNotThrow(() => lookupKind(name), name);
});
