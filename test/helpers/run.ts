import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createContext, main } from '../../src/main.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function tempHome(): string {
  return mkdtempSync(join(tmpdir(), 'kport-test-'));
}

/** Runs kport in-process with captured streams (docs/style.md 14). */
export async function runKport(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; tty?: boolean; now?: () => Date; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const cwd = opts.cwd ?? tempHome();
  const ctx = createContext({
    stdout,
    stderr,
    stdoutIsTTY: opts.tty ?? false,
    stderrIsTTY: opts.tty ?? false,
    env: { HOME: cwd, XDG_DATA_HOME: join(cwd, 'data'), ...opts.env },
    cwd,
    ...(opts.now && { now: opts.now }),
    ...(opts.signal && { signal: opts.signal }),
  });
  const code = await main(argv, ctx);
  return { code, stdout: out, stderr: err };
}
