// `kport login --invite` keeps the one-time code out of the process list (an outside tester read it
// from /proc/PID/cmdline and finished the enrollment first): asked for on the terminal, read from
// stdin or a file, and a code still typed on the command line is hidden from the process title at
// once, with a warning. Each case looks at the real process while it waits for the new password.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import * as OTPAuth from 'otpauth';
import { KPORT_BIN } from '../helpers/cli.ts';
import { person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { waitFor } from '../peers/process.ts';

const PASSWORD = 'a long enough new password';

/** What `ps` and /proc show of a process's command line (NULs as spaces). */
function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
}

/** The kport (node) process under `root`: the deepest one running kport, below script(1) and its shell. */
function kportBelow(root: number): number | undefined {
  let children: number[] = [];
  try {
    children = readdirSync(`/proc/${root}/task`).flatMap((t) =>
      readFileSync(`/proc/${root}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {}
  for (const pid of children) {
    const below = kportBelow(pid);
    if (below) return below;
    try {
      if (commandLine(pid).includes(KPORT_BIN)) return pid;
    } catch {}
  }
  return undefined;
}

const totp = (uri: string) => (OTPAuth.URI.parse(uri) as OTPAuth.TOTP).generate();

describe('login --invite: the code never sits in the process list', { timeout: 180_000 }, () => {
  let server: TestServer;
  let n = 0;
  before(async () => {
    server = await startServer();
  });
  after(async () => server?.stop());

  /** A new person's invite, from `users add` as an editor runs it. */
  const invite = async () => {
    const name = `carol${++n}`;
    const res = await server.kport(['users', 'add', name, '--roles', 'access']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(
      String(res.stdout),
      new RegExp(`^ {2}kport login --proxy ${server.address.replace(/\./g, '\\.')} --ca-pin sha256:[0-9a-f]{64} --invite$`, 'm'),
      'the command to send holds no code',
    );
    return { name, code: /^ {2}invite code: (\S+)$/m.exec(String(res.stdout))![1]! };
  };

  /**
   * `kport login` with --password-stdin and `args`, `first` written to stdin at once; at the TOTP
   * enrollment (it then waits for the new password) the command line is taken, then the answers go in.
   */
  const scripted = async (args: string[], first: string) => {
    const p = person();
    const proc = execa(process.execPath, [KPORT_BIN, 'login', '--proxy', server.address, '--ca-pin', server.pin, ...args, '--password-stdin'], {
      cwd: p.home,
      env: { HOME: p.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
    });
    if (first) proc.stdin!.write(first);
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => (stderr += c));
    let exited = false;
    void proc.finally(() => (exited = true)).catch(() => undefined);
    const uri = await waitFor('the TOTP enrollment', async () => /otpauth:\/\/\S+/.exec(stderr)?.[0] ?? (exited ? 'exited' : undefined), { timeoutMs: 30_000 });
    assert.notEqual(uri, 'exited', stderr);
    const shown = commandLine(proc.pid!);
    const ps = String((await execa('ps', ['-o', 'args=', '-p', String(proc.pid)])).stdout);
    proc.stdin!.end(`${PASSWORD}\n${totp(uri)}\n`);
    const res = await proc;
    return { shown, ps, exitCode: res.exitCode, stdout: String(res.stdout), stderr };
  };

  test('--invite - (or --invite alone) with --password-stdin: the code is the first line of stdin, never in /proc/PID/cmdline', async () => {
    for (const flag of [['--invite', '-'], ['--invite']]) {
      const { name, code } = await invite();
      const run = await scripted(flag, `${code}\n`);
      assert.ok(!run.shown.includes(code) && !run.ps.includes(code), `the code is on the command line: ${run.shown}`);
      assert.equal(run.exitCode, 0, run.stderr);
      assert.match(run.stdout, new RegExp(`^Logged in as ${name} \\(roles: access\\)`));
      assert.doesNotMatch(run.stderr, /given on the command line/);
    }
  });

  test('--invite FILE: the code is read from the file, never in /proc/PID/cmdline', async () => {
    const { name, code } = await invite();
    const file = join(person().home, 'invite');
    writeFileSync(file, `${code}\n`, { mode: 0o600 });
    const run = await scripted(['--invite', file], '');
    assert.ok(!run.shown.includes(code), run.shown);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^Logged in as ${name} `));
  });

  test('a code given on the command line is hidden from ps and /proc/PID/cmdline before the enrollment, and kport says it was seen', async () => {
    const { name, code } = await invite();
    const run = await scripted(['--invite', code], '');
    assert.ok(!run.shown.includes(code.slice(0, 8)), `no part of it is left in the argv memory: ${run.shown}`);
    assert.ok(!run.ps.includes(code), run.ps);
    assert.match(run.ps, /login .*--invite \*\*\*/);
    assert.match(
      run.stderr,
      /the invite code was given on the command line: kport hid it from the process list now, but other users could see it until then \(and finish your enrollment first\) .*run kport login --invite alone to be asked for it/,
    );
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^Logged in as ${name} `));
  });

  test('on a terminal (a real pty through script(1)): --invite alone asks for the code with no echo; waiting at the password prompt, the process shows no code', async (t) => {
    if ((await execa('script', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode !== 0)
      return void t.skip('script(1) (util-linux) is not installed: no pty to test the prompt with');
    const { name, code } = await invite();
    const p = person();
    const command = `${process.execPath} ${KPORT_BIN} login --proxy ${server.address} --ca-pin ${server.pin} --invite`;
    const proc = execa('script', ['-qfec', command, '/dev/null'], {
      cwd: p.home,
      env: { HOME: p.home, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
    });
    let screen = '';
    proc.stdout!.on('data', (c: Buffer) => (screen += c));
    // Each answer is typed once its prompt is up: before that the terminal is not raw yet and would echo it.
    const answer = async (prompt: string, text: string) => {
      await waitFor(`the prompt "${prompt}"`, async () => screen.includes(prompt), { timeoutMs: 30_000 });
      proc.stdin!.write(`${text}\r`);
    };
    await answer('Invite code (from kport users add): ', code);
    await waitFor('the new password prompt', async () => screen.includes(`New password for ${name}: `), { timeoutMs: 30_000 });
    const pid = await waitFor('the kport process', async () => kportBelow(proc.pid!), { timeoutMs: 5_000 });
    assert.ok(!commandLine(pid).includes(code), `the code is on the command line: ${commandLine(pid)}`);
    proc.stdin!.write(`${PASSWORD}\r`);
    await answer('Repeat the new password: ', PASSWORD);
    const uri = /otpauth:\/\/\S+/.exec(screen)![0]!;
    await answer('TOTP code from your authenticator app: ', totp(uri));
    const res = await proc;
    assert.equal(res.exitCode, 0, screen);
    assert.ok(!screen.includes(code), 'the code was not echoed');
    assert.match(screen, new RegExp(`Logged in as ${name} `));
  });
});
