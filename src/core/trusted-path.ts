import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { UserError } from './errors.ts';
import { judgeOwner } from './file-trust.ts';

/**
 * OpenSSH's secure_filename for a directory kport keeps its secrets in or writes a file into (the
 * data dir, KPORT_HOME, a kubeconfig's directory): the path is walked once, from /, and every
 * symbolic link on it must belong to the user running kport or to root, every directory too, and
 * no directory before the last may be writable by others unless it is sticky (as /tmp is: there
 * nobody can move or remove an entry they do not own). A path that passes cannot be changed by
 * anyone else afterwards, so the real path returned is what every later access goes through: a
 * link another user can swap (this machine has fs.protected_symlinks=0) is never followed again.
 */
export interface PathRule {
  /** What the path is, as a refusal names it: "the data dir", "your kport home". */
  what: string;
  /** The exit code of a refusal (4 where it is the person's credential). */
  exitCode?: number;
}

/** Links followed at most, as the kernel's own limit (ELOOP). */
const MAX_LINKS = 40;

const mode = (st: Stats) => (st.mode & 0o7777).toString(8).padStart(4, '0');
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The real path of `path` after the walk; a tail that does not exist yet is appended as given (the
 * command that makes it, with `create`, makes each missing directory 0700 itself, one at a time,
 * and judges whatever another user put there first). Whose the last directory is, is checked here;
 * its mode is the caller's rule (the data dir's, a profile's), since each says what to do, except
 * with `writeInto`: a directory kport writes a file into is held to the rule of the ones before it.
 */
export function trustedPath(path: string, rule: PathRule, opts: { create?: boolean; writeInto?: boolean } = {}): string {
  const given = resolve(path);
  if (process.geteuid?.() === undefined) {
    if (opts.create) mkdirSync(given, { recursive: true, mode: 0o700 });
    return given;
  }
  let pending = parts(given);
  let real: string = sep;
  judgeDir(real, lstatSync(real), given, rule, pending.length === 0 && !opts.writeInto);
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    const next = join(real, part);
    let st: Stats;
    try {
      st = lstatSync(next);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && opts.create) {
        make(next);
        pending.unshift(part);
        continue;
      }
      // Nothing there yet, or nothing kport can reach: whatever is made or read there later goes through the checked prefix.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return join(next, ...pending);
      throw err;
    }
    if (st.isSymbolicLink()) {
      const [at, what] = named(next, given, rule, 'the symbolic link');
      judgeOwner(at, st, what);
      if (++links > MAX_LINKS)
        throw new UserError(
          `${given} leads through more than ${MAX_LINKS} symbolic links: point ${rule.what} at a directory, then run the command again.`,
          rule.exitCode ?? 1,
        );
      pending = [...parts(resolve(real, readlinkSync(next))), ...pending];
      real = sep;
      continue;
    }
    if (!st.isDirectory()) {
      // A file where a directory should be: the command's own sentence says so when it uses it.
      const [at, what] = named(next, given, rule, 'the file');
      judgeOwner(at, st, what);
      return join(next, ...pending);
    }
    judgeDir(next, st, given, rule, pending.length === 0 && !opts.writeInto);
    real = next;
  }
  return real;
}

/** Refuses a directory of another user, and one before the last that others can write and is not sticky. */
function judgeDir(dir: string, st: Stats, given: string, rule: PathRule, last: boolean): void {
  const [at, what] = named(dir, given, rule, 'the directory');
  judgeOwner(at, st, what);
  if (last || !(st.mode & 0o022) || st.mode & 0o1000) return;
  throw new UserError(
    `${capital(what.what)} ${at} is writable by other users (mode ${mode(st)}), who could put their own files or links there in place of kport's: run chmod go-w ${dir} (or chmod +t, as /tmp is), or choose a path outside it, then run the command again.`,
    rule.exitCode ?? 1,
  );
}

/**
 * How a refusal names `path`: `the data dir /d` (the path itself, a directory), `the symbolic link
 * /tmp/link` (the path itself, a link), or `the directory /tmp/x on the way to the data dir /tmp/x/d`.
 */
function named(path: string, given: string, rule: PathRule, kind: string): [string, { what: string; exitCode?: number }] {
  const what = path === given && kind === 'the directory' ? rule.what : kind;
  return [path === given ? path : `${path} on the way to ${rule.what} ${given}`, { what, ...(rule.exitCode !== undefined && { exitCode: rule.exitCode }) }];
}

/** One directory made 0700; one someone else made first at that name is judged by the walk, as any. */
function make(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function parts(path: string): string[] {
  return path.split(sep).filter((p) => p !== '');
}
