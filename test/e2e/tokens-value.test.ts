// `tokens add --value`: a chosen secret reaches the store without sitting in the process list (the
// attack round of issue 27: a value in argv let another local user join an agent with it).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { tempDir } from '../peers/process.ts';

function home() {
  const dir = tempDir('token-value');
  const config = join(dir, 'kport.yaml');
  writeFileSync(config, stringify({ version: 'v3', teleport: { data_dir: join(dir, 'data') } }));
  const env = { HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config };
  return (args: string[], input?: string) =>
    execa(process.execPath, [KPORT_BIN, ...args], {
      cwd: dir,
      env,
      extendEnv: false,
      reject: false,
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
}

test('--value - takes the secret from stdin, and a value in argv is hidden with a warning that says to prefer stdin', async () => {
  const kport = home();
  const secret = 'a-chosen-secret-of-enough-length-0123456789';
  const piped = await kport(['tokens', 'add', '--type=kube', '--value', '-', '--format=json'], `${secret}\n`);
  assert.equal(piped.exitCode, 0, piped.stderr);
  assert.equal(JSON.parse(piped.stdout).token, secret);
  assert.doesNotMatch(piped.stderr, /command line/);

  const other = `${secret}-argv`;
  const argv = await kport(['tokens', 'add', '--type=kube', '--value', other, '--format=json']);
  assert.equal(argv.exitCode, 0, argv.stderr);
  assert.equal(JSON.parse(argv.stdout).token, other);
  assert.match(argv.stderr, /given on the command line: kport hid it from the process list now.*prefer --value - with the secret on stdin/);
  assert.ok(!argv.stderr.includes(other), 'the warning does not repeat the secret');

  const empty = await kport(['tokens', 'add', '--type=kube', '--value', '-'], '\n');
  assert.equal(empty.exitCode, 2);
  assert.match(empty.stderr, /--value - read nothing from stdin/);
});
