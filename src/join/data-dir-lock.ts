import { linkSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeTempBeside } from '../core/atomic-write.ts';
import { UserError } from '../core/errors.ts';
import { checkDataDir } from '../core/file-trust.ts';
import { trustedPath } from '../core/trusted-path.ts';
import { kportProcessAlive } from '../core/process-alive.ts';

/**
 * One agent per data dir: the identity (host id) lives there, and two processes sharing it would
 * be one agent to the store, each waiting on the other's lease. A lock file names the holder; a
 * holder that is gone (SIGKILL, reboot) leaves a stale lock, which the next start takes over.
 */
export function lockDataDir(dataDir: string): () => void {
  // Made one directory at a time, each judged (trusted-path.ts): a link planted at a name not yet made is refused, never followed.
  trustedPath(dataDir, { what: 'the data dir' }, { create: true });
  // An agent's identity and lock live here: another user's data dir, or one others can write, is refused.
  checkDataDir(dataDir);
  const path = join(dataDir, 'agent.lock');
  // Written aside and hard-linked into place: the lock never exists without its holder's name.
  const tmp = writeTempBeside(path, `${JSON.stringify({ pid: process.pid, hostname: hostname() })}\n`, 0o600);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(path);
      if (attempt >= 3 || (holder && holderAlive(holder))) {
        throw new UserError(
          holder
            ? `Another kport agent (pid ${holder.pid} on ${holder.hostname}) is running on the data dir ${dataDir}: give each agent its own teleport.data_dir (or --data-dir).`
            : `Cannot lock the data dir ${dataDir}: ${path} is not a kport lock; remove it if no agent runs there.`,
        );
      }
      // Stale: its holder is gone. Moved aside, then checked: if another starter took the lock
      // in between, what was moved is its live lock, which goes back.
      const aside = `${path}.${process.pid}.stale`;
      try {
        renameSync(path, aside);
      } catch {
        continue;
      }
      const moved = readHolder(aside);
      if (moved && holder && moved.pid !== holder.pid) {
        try {
          linkSync(aside, path);
        } catch {}
      }
      unlinkSync(aside);
    }
  } finally {
    unlinkSync(tmp);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (readHolder(path)?.pid === process.pid) unlinkSync(path);
    } catch {}
  };
}

interface Holder {
  pid: number;
  hostname: string;
}

function readHolder(path: string): Holder | undefined {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as Holder;
    return typeof holder.pid === 'number' ? holder : undefined;
  } catch {
    return undefined;
  }
}

function holderAlive(holder: Holder): boolean {
  // A lock from another machine (a shared data dir) cannot be checked: treat it as held.
  if (holder.hostname !== hostname()) return true;
  return holder.pid !== process.pid && kportProcessAlive(holder.pid);
}
