// Another Unix user on this machine, for the tests of what kport trusts locally: files that user
// "planted" (owned by them), and kport run as them. Root does both directly; a normal user needs
// passwordless sudo (CI runners have it). Without either, only those parts of a test are skipped,
// with the reason; checks of modes (group/other-writable) need no other user and always run.
import { lchownSync, lstatSync } from 'node:fs';
import { execa } from 'execa';

/** nobody, on Debian, Ubuntu and most others: a uid that is neither root nor the tester. */
export const OTHER_UID = 65534;

export interface OtherUser {
  uid: number;
  /** Makes `path` (a link itself, not its target) belong to the other user; `undo` gives it back. */
  plant(path: string): Promise<() => Promise<void>>;
  /** argv that runs `command` as the other user (setpriv, runuser or sudo -u) with exactly `env`. */
  as(command: string[], env: Record<string, string>): string[];
}

let found: Promise<OtherUser | string> | undefined;

/** The other user, or the reason this run has none. */
export function otherUser(): Promise<OtherUser | string> {
  found ??= (async () => {
    if (process.platform === 'win32') return 'Windows has no Unix owners';
    const root = process.geteuid?.() === 0;
    const sudo = !root && (await execa('sudo', ['-n', 'true'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
    if (!root && !sudo) return 'making a file belong to another user needs root or passwordless sudo, and this run has neither';
    const setpriv = (await execa('setpriv', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
    return {
      uid: OTHER_UID,
      async plant(path) {
        const { uid, gid } = lstatSync(path);
        if (root) {
          lchownSync(path, OTHER_UID, OTHER_UID);
          return async () => lchownSync(path, uid, gid);
        }
        await execa('sudo', ['-n', 'chown', '-h', `${OTHER_UID}:${OTHER_UID}`, path]);
        return async () => void (await execa('sudo', ['-n', 'chown', '-h', `${uid}:${gid}`, path]));
      },
      as(command, env) {
        // env -i: exactly this environment, whichever way the user is switched (sudo resets it).
        const run = ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...command];
        if (root && setpriv) return ['setpriv', `--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', ...run];
        return root ? ['runuser', '-u', 'nobody', '--', ...run] : ['sudo', '-n', '-u', `#${OTHER_UID}`, ...run];
      },
    };
  })();
  return found;
}
