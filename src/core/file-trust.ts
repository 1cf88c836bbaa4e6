import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type Stats } from 'node:fs';
import { UserError } from './errors.ts';

/**
 * What kport trusts on this machine, as ssh does with its keys and config: a file or directory that
 * carries a secret or decides who someone is (the data dir, the store, the CA seal key, an agent's
 * identity, a person's profile) must belong to the user running kport or to root, and others must
 * not be able to write it (nor read it, for a secret). Another local user who could create such a
 * path first (a data dir under /tmp, a KPORT_HOME they made) would otherwise choose the keys kport uses.
 */
export interface TrustRule {
  /** What the path is, as the refusal names it: "the CA seal key", "the data dir". */
  what: string;
  /** What another user could do by writing it: "replace the server's CAs in it". */
  harm: string;
  /** A secret: also refused when group or others can read it; `afterRead` is what to do besides chmod. */
  secret?: { afterRead?: string };
  /** The exit code of a refusal (4 where it is the person's credential). */
  exitCode?: number;
}

/** The user whose files are trusted besides root's; undefined where there are no uids (Windows). */
function runningUid(): number | undefined {
  return process.geteuid?.();
}

/** `uid 65534 (nobody)`: the name from /etc/passwd when it has one, only on the refusal path. */
export function describeUid(uid: number): string {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    const name = line?.split(':')[0];
    if (name) return `uid ${uid} (${name})`;
  } catch {}
  return `uid ${uid}`;
}

const mode = (st: Stats) => (st.mode & 0o777).toString(8).padStart(4, '0');
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Refuses what belongs to neither the running user nor root. */
export function judgeOwner(path: string, st: Stats, rule: Pick<TrustRule, 'what' | 'exitCode'>): void {
  const me = runningUid();
  if (me === undefined || st.uid === me || st.uid === 0) return;
  throw new UserError(
    `${capital(rule.what)} ${path} belongs to ${describeUid(st.uid)}, not to you (${describeUid(me)})${me === 0 ? '' : ' or root'}: another local user may have put it there, so kport will not use it; check it, then remove it or ${me === 0 ? 'chown it to root' : 'have root chown it to you'}.`,
    rule.exitCode ?? 1,
  );
}

/** Throws the sentence for the first way `st` (of `path`) breaks the rule. */
export function judge(path: string, st: Stats, rule: TrustRule): void {
  if (runningUid() === undefined) return;
  judgeOwner(path, st, rule);
  const code = rule.exitCode ?? 1;
  const dir = st.isDirectory();
  if (st.mode & 0o022) {
    throw new UserError(
      `${path} is writable by other users, who could ${rule.harm}: run chmod ${dir ? '700' : '600'} ${path}, then run the command again.`,
      code,
    );
  }
  if (rule.secret && st.mode & 0o077) {
    throw new UserError(
      `${path} can be read by other users (mode ${mode(st)}), so kport will not use it: run chmod 600 ${path}${rule.secret.afterRead ?? ''}.`,
      code,
    );
  }
}

function missing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The sentence for a path kport may not read: it cannot tell what is there, so it does not guess. */
function unreadable(path: string, rule: TrustRule, err: unknown): UserError {
  const why = (err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message;
  return new UserError(
    `Cannot read ${rule.what} ${path} (${why}): make it yours and readable by you, or point kport elsewhere, then run the command again.`,
    rule.exitCode ?? 1,
    { cause: err },
  );
}

/** The stats of `path` (a link followed) after the rule passed; undefined when nothing is there. `ownerOnly`: only whose it is. */
export function checkTrusted(path: string, rule: TrustRule, opts: { ownerOnly?: boolean } = {}): Stats | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    if (missing(err)) return undefined;
    throw unreadable(path, rule, err);
  }
  if (opts.ownerOnly) judgeOwner(path, st, rule);
  else judge(path, st, rule);
  return st;
}

/**
 * The text of a file whose open descriptor passed the rule, so what is checked is what is read (no
 * window to swap the file in between); undefined when there is no file.
 */
export function readTrusted(path: string, rule: TrustRule, opts: { ownerOnly?: boolean } = {}): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    if (missing(err)) return undefined;
    throw unreadable(path, rule, err);
  }
  try {
    const st = fstatSync(fd);
    if (opts.ownerOnly) judgeOwner(path, st, rule);
    else judge(path, st, rule);
    if (!st.isFile()) throw new UserError(`${capital(rule.what)} ${path} is not a regular file: remove it, then run the command again.`, rule.exitCode ?? 1);
    return readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw unreadable(path, rule, err);
  } finally {
    closeSync(fd);
  }
}

const DATA_DIR: TrustRule = { what: 'the data dir', harm: "replace the store, the CA seal key or an agent's identity in it" };

/**
 * The data dir holds the store, the CA seal key, agent identities and proxy kubeconfigs with client
 * keys: another user's, or one others can write, is refused; one others can only read is said.
 */
export function checkDataDir(dataDir: string, warn?: (message: string) => void): void {
  const st = checkTrusted(dataDir, DATA_DIR);
  if (st && st.mode & 0o077) warn?.(`the data dir ${dataDir} is open to other users (mode ${mode(st)}): run chmod 700 ${dataDir}.`);
}
