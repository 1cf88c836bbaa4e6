import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, lstatSync, openSync, readlinkSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from './errors.ts';
import { judgeOwner } from './file-trust.ts';
import { trustedPath } from './trusted-path.ts';

export interface AtomicWriteOptions {
  /** The file's mode; 0600 unless it holds nothing secret. */
  mode?: number;
  /**
   * A symbolic link at the path: `refuse` (kport's own files are never links), or `follow-own`: the
   * file it points to is replaced, as kubectl writes through a linked ~/.kube/config (dotfile
   * managers link it), but only when each link belongs to the user or root; a link another user
   * planted in a directory others can write is refused, never followed.
   */
  symlink?: 'refuse' | 'follow-own';
}

/** Links followed at most, as the kernel's own limit (ELOOP). */
const MAX_LINKS = 40;

/**
 * Writes `data` to `path` so that a reader sees the old file or the new one, never a part, and
 * nobody else can choose where it lands: a temporary file beside the target (the same file system,
 * so the rename is atomic) with an unpredictable name, created with O_EXCL (never through a link or
 * over a file someone placed there first), synced, then renamed over the target. An existing
 * target that belongs to another user (not root) is refused, since replacing it would hand that
 * user's file our contents or take theirs as ours. Returns the file written (the link's target).
 * The fsync costs 4-5 ms a file on ext4 here (a login writes five): kport writes these files once
 * per login, join, renewal or kubeconfig, never per request.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): string {
  const target = resolveTarget(path, opts.symlink ?? 'refuse');
  const tmp = writeTempBeside(target, data, opts.mode ?? 0o600);
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return target;
}

/**
 * A new file beside `path` holding `data` (synced), named `<name>.<pid>.<random>.tmp` (the pid
 * tells a leftover of a killed process from a live one's), created with O_EXCL: whatever another
 * user placed at a name they guessed makes this fail, never receives the data.
 */
export function writeTempBeside(path: string, data: string | Uint8Array, mode: number): string {
  const tmp = join(dirname(path), `${basename(path)}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return tmp;
}

/** The file to replace: `path`, or where its links lead under the `follow-own` rule; each in a directory no one else can change (trusted-path.ts). */
function resolveTarget(path: string, symlink: 'refuse' | 'follow-own'): string {
  let current = inTrustedDir(resolve(path));
  for (let hops = 0; hops <= MAX_LINKS; hops++) {
    let st: Stats;
    try {
      st = lstatSync(current);
    } catch (err) {
      // Nothing there yet (or a link to nothing, which kubectl would create): the write creates it.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return current;
      throw err;
    }
    checkOwner(current, st, path);
    if (!st.isSymbolicLink()) return current;
    if (symlink === 'refuse')
      throw new UserError(
        `${path} is a symbolic link, and kport writes its own files only in place of a regular file: remove the link, then run the command again.`,
      );
    current = inTrustedDir(resolve(dirname(current), readlinkSync(current)));
  }
  throw new UserError(`${path} leads through more than ${MAX_LINKS} symbolic links: point it at a file, then run the command again.`);
}

/**
 * `file` in the real path of its directory, which must be the user's or root's and writable by no
 * one else unless sticky, as every directory on the way to it: another user's directory, or a
 * link of theirs on the way, would let them take the file or choose where it lands.
 */
function inTrustedDir(file: string): string {
  return join(trustedPath(dirname(file), { what: 'the directory' }, { writeInto: true }), basename(file));
}

/** An existing file or link of another user (not root) is neither written through nor replaced. */
function checkOwner(current: string, st: Stats, path: string): void {
  const via = current === resolve(path) ? '' : ` (where ${path} leads)`;
  judgeOwner(`${current}${via}`, st, { what: st.isSymbolicLink() ? 'the symbolic link' : 'the file' });
}
