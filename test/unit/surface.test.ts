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
    execFileSync('bash', ['-c', `source completions/kport.bash; COMP_WORDS=(${words.map((w) => `"${w}"`).join(' ')}); COMP_CWORD=${words.length - 1}; _kport; echo "\${COMPREPLY[@]}"`], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
    }).trim();
  assert.equal(complete('kport', 'tok'), 'tokens');
  assert.equal(complete('kport', 'tokens', ''), 'add ls rm');
  assert.equal(complete('kport', 'tokens', 'add', '--t'), '--type --ttl');
  assert.equal(complete('kport', 'get', 'kube'), 'kube_cluster');
});
