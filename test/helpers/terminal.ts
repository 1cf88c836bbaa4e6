// A person at a terminal in tests: kubectl in a real pseudo-terminal, and bytes through a local
// port-forward (kube-server.test.ts, peering.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

/**
 * `command` in a real pseudo-terminal (script gives kubectl a terminal); each step waits until the
 * output since the last step matches `after`, then types `send`. Every wait is bounded.
 */
export async function interactive(
  home: string,
  command: string,
  steps: Array<{ after: RegExp; send: string }>,
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string }> {
  const proc = execa('script', ['-qfc', command, '/dev/null'], {
    env: { HOME: home, PATH: process.env.PATH ?? '', TERM: 'xterm', ...opts.env },
    extendEnv: false,
    reject: false,
    stdin: 'pipe',
    timeout: opts.timeoutMs ?? 60_000,
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c));
  proc.stderr!.on('data', (c: Buffer) => (out += c));
  // execa's exitCode is undefined until the result: `exitCode !== null` once made every wait return
  // at once, so every line was typed ahead, before kubectl even connected.
  let exited = false;
  void proc.then(() => (exited = true));
  let from = 0;
  for (const step of steps) {
    await waitFor(`${step.after} in the terminal`, async () => step.after.test(out.slice(from)) || exited, { timeoutMs: 30_000 }).catch(() => undefined);
    from = out.length;
    proc.stdin!.write(step.send);
  }
  const res = await proc;
  return { code: res.exitCode ?? -1, out };
}

/** Sends `sent` to a local port (a port-forward) and collects as many bytes back. */
export async function echoThrough(port: number, sent: Buffer): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const socket = connect(port, '127.0.0.1', () => socket.write(sent));
    socket.setTimeout(30_000, () => socket.destroy(new Error('port-forward: no bytes for 30 s')));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= sent.length) {
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * `kubectl exec -it -n apps web -- sh` in a pty: two lines, each typed after the last answer
 * (`<tag>-42`, then `again-6`), both answers back and a clean exit.
 */
export async function shellTwoLines(home: string, tag: string): Promise<void> {
  const shell = await interactive(home, `${BINARIES.kubectl()} exec -it -n apps web -- sh`, [
    { after: /[#$] $/, send: `echo ${tag}-$((6*7))\n` },
    { after: new RegExp(`${tag}-42`), send: 'echo again-$((2*3))\n' },
    { after: /again-6/, send: 'exit\n' },
  ]);
  assert.equal(shell.code, 0, shell.out);
  assert.match(shell.out, new RegExp(`${tag}-42[\\s\\S]*again-6`));
}

/** `kubectl port-forward -n apps pod/web :8080` (started by `spawn`): `bytes` random bytes through it and back, equal. */
export async function forwardEcho(spawn: (args: string[]) => ResultPromise, bytes: number): Promise<void> {
  const forward = spawn(['port-forward', '-n', 'apps', 'pod/web', ':8080']);
  let printed = '';
  forward.stdout!.on('data', (c: Buffer) => (printed += c));
  forward.stderr!.on('data', (c: Buffer) => (printed += c));
  try {
    const port = Number(
      await waitFor('the forwarding line', async () => printed.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1], { timeoutMs: 30_000 }),
    );
    const sent = randomBytes(bytes);
    const received = await echoThrough(port, sent);
    assert.ok(received.equals(sent), `the echoed bytes are the bytes sent (${received.length} of ${sent.length})`);
  } finally {
    forward.kill('SIGTERM');
    await forward;
  }
}
