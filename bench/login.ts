// `kport login` with a local user, end to end (issue 20): the built CLI as a person runs it, the
// password and TOTP code piped with --password-stdin, against a real `kport server start` on
// sqlite. A TOTP code is accepted once, so each of the 20 logins is another user (invited first,
// untimed, paced under the server's login rate), and the timed logins start in a later TOTP step.
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import * as OTPAuth from 'otpauth';
import { execa } from 'execa';
import { startServer } from '../test/helpers/network.ts';
import { tempDir } from '../test/peers/process.ts';
import { KPORT, median, percentile, row } from './lib.ts';

const RUNS = 20;
const PASSWORD = 'correct horse battery staple';
const server = await startServer();
try {
  const people: Array<{ user: string; home: string; totp: OTPAuth.TOTP }> = [];
  for (let i = 0; i < RUNS; i++) {
    // The server takes 60 login calls a minute from one address (burst 30): an invite is two.
    if (i > 0) await sleep(2_000);
    const user = `bench${i}`;
    const added = await server.kport(['users', 'add', user, '--roles', 'access', '-o', 'json']);
    if (added.exitCode !== 0) throw new Error(String(added.stderr));
    const { invite } = JSON.parse(String(added.stdout)) as { invite: string };
    const home = tempDir('bench-login');
    const env = { HOME: home, PATH: process.env.PATH ?? '' };
    // The invite on stdin's first line, as README says a script passes it (never in argv).
    const proc = execa(process.execPath, [KPORT, 'login', '--proxy', server.address, '--invite', '-', '--ca-pin', server.pin, '--password-stdin'], {
      env,
      extendEnv: false,
      reject: false,
      stdin: 'pipe',
    });
    proc.stdin!.write(`${invite}\n`);
    let stderr = '';
    let totp: OTPAuth.TOTP | undefined;
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c;
      const uri = /otpauth:\/\/\S+/.exec(stderr)?.[0];
      if (uri && !totp) {
        totp = OTPAuth.URI.parse(uri) as OTPAuth.TOTP;
        proc.stdin!.end(`${PASSWORD}\n${totp.generate()}\n`);
      }
    });
    const res = await proc;
    if (res.exitCode !== 0 || !totp) throw new Error(stderr);
    people.push({ user, home, totp });
  }
  // A full burst for the 20 timed logins, which start in a TOTP step after the invites' codes.
  await sleep(35_000);
  await sleep(30_000 - (Date.now() % 30_000) + 200);
  const times: number[] = [];
  for (const p of people) {
    const input = `${PASSWORD}\n${p.totp.generate()}\n`;
    const start = process.hrtime.bigint();
    execFileSync(process.execPath, [KPORT, 'login', '--proxy', server.address, '--user', p.user, '--password-stdin'], {
      env: { HOME: p.home, PATH: process.env.PATH ?? '' },
      input,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  process.stdout.write(
    [
      '### kport login (local user, --password-stdin)',
      '',
      `${RUNS} logins, each a whole \`kport login\` process: key and CSR, /v1/login/local (scrypt, TOTP), profile written. Goal: median < 300 ms.`,
      '',
      '| logins | median ms | p90 ms | max ms |',
      '|---|---|---|---|',
      row([RUNS, median(times), percentile(times, 90), Math.max(...times)]),
      '',
      `node ${process.version}, ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
      '',
    ].join('\n'),
  );
} finally {
  await server.stop();
}
