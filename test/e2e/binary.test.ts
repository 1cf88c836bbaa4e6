// The built binary, end to end (STYLE.md 14).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { execa } from 'execa';
import { tempHome } from '../helpers/run.ts';

const bin = fileURLToPath(new URL('../../bin/kport.js', import.meta.url));

function kport(home: string) {
  return (args: string[], opts: { input?: string } = {}) =>
    execa(process.execPath, [bin, ...args], { cwd: home, env: { HOME: home, XDG_DATA_HOME: join(home, 'data'), KPORT_CONFIG: '' }, extendEnv: false, reject: false, ...opts });
}

test('the guide flow: tokens add --format=text > file, tokens ls without the secret, get kube_cluster empty', async () => {
  const home = tempHome();
  const run = kport(home);
  const add = await run(['tokens', 'add', '--type=discovery,kube', '--format=text']);
  assert.equal(add.exitCode, 0, add.stderr);
  const secret = add.stdout.trim();
  assert.match(secret, /^[0-9a-f]{16}\.[0-9a-f]{32}$/);
  const ls = await run(['tokens', 'ls']);
  assert.equal(ls.exitCode, 0);
  assert.match(ls.stdout, /^tok-[0-9a-f]{16}\tDiscovery,Kube\tunlimited\t\t\d{4}-\d\d-\d\dT/m);
  assert.ok(!ls.stdout.includes(secret));
  for (const f of readdirSync(join(home, 'data', 'kport'))) assert.ok(!readFileSync(join(home, 'data', 'kport', f)).includes(secret));
  const empty = await run(['get', 'kube_cluster', '--format=json']);
  assert.equal(empty.exitCode, 0);
  assert.equal(empty.stdout, '[]');
});

test('errors are one line on stderr with the documented exit code; --debug adds the stack', async () => {
  const home = tempHome();
  const run = kport(home);
  const bad = await run(['tokens', 'add', '--type=nope']);
  assert.equal(bad.exitCode, 2);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr.split('\n').length, 1);
  const debug = await run(['tokens', 'add', '--type=nope', '--debug']);
  assert.match(debug.stderr, /at normalizeRoles/);
  const badConfig = await run(['get', 'kube_cluster', '-c', join(home, 'missing.yaml')]);
  assert.equal(badConfig.exitCode, 2);
  assert.match(badConfig.stderr, /missing\.yaml does not exist/);
});

test('completion output matches the committed scripts', async () => {
  const run = kport(tempHome());
  for (const shell of ['bash', 'zsh', 'fish']) {
    const out = await run(['completion', shell]);
    assert.equal(`${out.stdout}\n`, readFileSync(new URL(`../../completions/kport.${shell}`, import.meta.url), 'utf8'));
  }
});
