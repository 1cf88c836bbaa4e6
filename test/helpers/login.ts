// A person at their own machine: a home of their own, the built CLI, and `kport login --invite`
// answered as a script would (password and a TOTP code computed here with otpauth).
import assert from 'node:assert/strict';
import type { execa } from 'execa';
import * as OTPAuth from 'otpauth';
import { tempDir, waitFor } from '../peers/process.ts';
import { NODE_CLI, runCli, type Cli } from './cli.ts';
import type { TestServer } from './network.ts';

export interface Person {
  home: string;
  kport(args: string[]): ReturnType<typeof execa>;
  loginWithInvite(args: string[], password: string): Promise<{ exitCode?: number; stdout: unknown; stderr: string; code: string; uri: string }>;
}

/** `cli`: which kport the person runs (the single executable in test/e2e/binary.test.ts). */
export function person(env: Record<string, string> = {}, cli: Cli = NODE_CLI): Person {
  const home = tempDir('person');
  const full = { HOME: home, PATH: process.env.PATH ?? '', ...env };
  return {
    home,
    kport: (args) => runCli(cli, args, { cwd: home, env: full, extendEnv: false, reject: false, stdin: 'ignore' }),
    async loginWithInvite(args, password) {
      // The code goes where README says a script puts it: the first line of stdin (`--invite -`), never argv.
      const at = args.indexOf('--invite');
      const invite = at >= 0 ? args[at + 1] : undefined;
      const argv = invite === undefined ? args : [...args.slice(0, at), '--invite', '-', ...args.slice(at + 2)];
      const proc = runCli(cli, ['login', ...argv, '--password-stdin'], { cwd: home, env: full, extendEnv: false, reject: false, stdin: 'pipe' });
      if (invite !== undefined) proc.stdin!.write(`${invite}\n`);
      let stderr = '';
      proc.stderr!.on('data', (c: Buffer) => (stderr += c));
      let exited = false;
      void proc.finally(() => (exited = true));
      const uri = await waitFor('the TOTP enrolment', async () => /otpauth:\/\/\S+/.exec(stderr)?.[0] ?? (exited ? 'exited' : undefined), {
        timeoutMs: 30_000,
      });
      assert.notEqual(uri, 'exited', stderr);
      const code = (OTPAuth.URI.parse(uri) as OTPAuth.TOTP).generate();
      proc.stdin!.end(`${password}\n${code}\n`);
      const res = await proc;
      return { exitCode: res.exitCode, stdout: res.stdout, stderr, code, uri };
    },
  };
}

/** `users add` on the server's host, then that person's login with the invite; the person is logged in to `server`. */
export async function invitedPerson(
  server: TestServer,
  name: string,
  roles: string[],
  password = `${name} has a long password`,
  env: Record<string, string> = {},
  cli: Cli = NODE_CLI,
): Promise<Person & { password: string; invite: string; login: Awaited<ReturnType<Person['loginWithInvite']>> }> {
  const res = await server.kport(['users', 'add', name, '--roles', roles.join(',')]);
  assert.equal(res.exitCode, 0, String(res.stderr));
  const invite = /^ {2}invite code: (\S+)$/m.exec(String(res.stdout))?.[1];
  assert.ok(invite, String(res.stdout));
  const p = person(env, cli);
  const login = await p.loginWithInvite(['--proxy', server.address, '--invite', invite, '--ca-pin', server.pin], password);
  assert.equal(login.exitCode, 0, login.stderr);
  return { ...p, password, invite, login };
}
