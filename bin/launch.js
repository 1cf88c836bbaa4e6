// What every way of running kport shares (bin/kport.js under Node, the single executable built by
// scripts/sea.ts): quiet EPIPE, signal handling, the process-backed context, then main().
import { constants } from 'node:os';

/** Runs kport on this process's argv and streams; resolves to the exit code. */
export async function launch({ main, createContext }) {
  // A reader that stops early (`kport get kube_cluster | head`) is not a failure: stop quietly, as
  // `yes | head` does, with exit 0 so `set -o pipefail` scripts do not fail on it.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(0);
    });
  }
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      // A second signal means now, cutting the clean stop short: 128 + its number, as a shell reports a
      // process it killed (130 Ctrl-C, 143 SIGTERM). 'exit' handlers still remove what must not be left behind.
      if (controller.signal.aborted) process.exit(128 + constants.signals[signal]);
      controller.abort(new Error(signal));
    });
  }
  const ctx = createContext({
    stdout: process.stdout,
    stderr: process.stderr,
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
    stdinIsTTY: Boolean(process.stdin.isTTY),
    env: process.env,
    cwd: process.cwd(),
    debug: process.argv.includes('--debug'),
    signal: controller.signal,
  });
  return main(process.argv.slice(2), ctx);
}
