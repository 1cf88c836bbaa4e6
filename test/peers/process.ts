import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { existsSync } from 'node:fs';
import { peersCacheDir } from './versions.ts';

const registry = join(peersCacheDir(), 'running');
const live = new Set<ChildProcess>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills peers left behind by a test process that died without cleaning up. */
function sweepOrphans(): void {
  mkdirSync(registry, { recursive: true });
  for (const file of readdirSync(registry)) {
    const [owner, child] = file.split('-').map(Number);
    if (owner && child && !alive(owner)) {
      try {
        process.kill(-child, 'SIGKILL');
      } catch {}
      rmSync(join(registry, file), { force: true });
    }
  }
}

/** Directories tempDir made in this process: gone when it exits, so a run does not leave gigabytes of etcd WALs behind. */
const made = new Set<string>();

process.on('exit', () => {
  for (const child of live) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
    rmSync(join(registry, `${process.pid}-${child.pid}`), { force: true });
  }
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
    } catch {}
  }
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kport-${prefix}-`));
  made.add(dir);
  return dir;
}

export interface Peer {
  child: ChildProcess;
  logFile: string;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts a peer in its own process group, logging to a file, tracked for cleanup. */
export function spawnPeer(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; dir: string }): Peer {
  sweepOrphans();
  const logFile = join(opts.dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.env } });
  live.add(child);
  const marker = join(registry, `${process.pid}-${child.pid}`);
  writeFileSync(marker, name);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    logFile,
    log: () => readFileSync(logFile, 'utf8'),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, signal);
        } catch {}
        const killed = await Promise.race([exited.then(() => true), raceTimer(5000, false)]);
        if (!killed) {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {}
          await exited;
        }
      }
      live.delete(child);
      rmSync(marker, { force: true });
    },
  };
}

/**
 * Resolves after `ms`, for the losing side of a race (how long to wait for an exit, a close): unlike
 * a plain sleep it does not hold the test process open once the race is decided, which kept each
 * file that stopped a peer alive for up to 5 s more (and one with a 30 s race for 30 s more).
 */
export function raceTimer<T = undefined>(ms: number, value?: T): Promise<T> {
  return sleep(ms, value as T, { ref: false });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, opts: { timeoutMs?: number; peer?: Peer } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (opts.peer && opts.peer.child.exitCode !== null) {
      throw new Error(`${what}: the process exited with code ${opts.peer.child.exitCode}; its log:\n${opts.peer.log().slice(-3000)}`);
    }
    try {
      const result = await probe();
      if (result) return result;
    } catch (err) {
      lastError = err;
    }
    await sleep(100);
  }
  throw new Error(
    `timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}${opts.peer ? `\n${opts.peer.log().slice(-3000)}` : ''}`,
  );
}

const strict = process.env.CI === 'true' || process.env.CI === '1';

/**
 * True when the peer binaries exist. Outside CI a missing peer skips the test with what to do;
 * with CI=true it fails the test, never a silent skip.
 */
export function havePeer(t: TestContext, name: string, paths: string[]): boolean {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const message = `${name} is not provisioned (${missing.join(', ')} missing): run \`node test/peers/provision.ts\` (needs go and python3)`;
  if (strict) throw new Error(message);
  t.skip(message);
  return false;
}
