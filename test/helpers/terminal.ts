// A person at a terminal in tests: kubectl in a real pseudo-terminal, and bytes through a local
// port-forward (kube-server.test.ts, peering.test.ts).
import { connect } from 'node:net';
import { execa } from 'execa';
import { waitFor } from '../peers/process.ts';

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
