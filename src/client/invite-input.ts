import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import { hideArgvValue } from '../core/argv-secret.ts';
import { UsageError } from '../core/errors.ts';
import { MAX_STDIN_BYTES } from './prompt.ts';

/**
 * Where `kport login --invite` takes the one-time code from. An invite is a password reset waiting
 * to happen: whoever finishes it first sets the password. In argv it is readable by every local
 * user (`ps`, /proc/PID/cmdline) for the whole enrollment, so, as join tokens do (`--token FILE|-`),
 * it is asked for (or read from stdin, or from a file) and a code typed on the command line is only
 * tolerated: hidden from the process title at once, with a warning.
 */
export type InviteSource = { from: 'ask' } | { from: 'file'; path: string } | { from: 'argv'; code: string };

/** `--invite` alone or `--invite -`: asked; an existing file (or a value with a /): read; anything else: the code itself. */
export function inviteSource(value: string | true, cwd: string): InviteSource {
  if (value === true || value === '-') return { from: 'ask' };
  const path = resolve(cwd, value);
  if (existsSync(path)) return { from: 'file', path };
  if (value.includes('/'))
    throw new UsageError(
      `The invite file ${value} does not exist: save the code \`kport users add\` printed in it, or run kport login --invite alone to be asked for it.`,
    );
  // The value is the code: out of the process list now, before the enrollment it could be used for.
  hideArgvValue('--invite', value);
  return { from: 'argv', code: value };
}

/** What a command line code earns: a warning once the login goes ahead (it was visible until now). */
export const ARGV_WARNING =
  'the invite code was given on the command line: kport hid it from the process list now, but other users could see it until then (and finish your enrollment first) and your shell history keeps it; run kport login --invite alone to be asked for it, or --invite FILE.';

export interface InviteIo {
  stdin: Readable;
  stderr: Writable;
  /** --password-stdin: the code is the first line of stdin, the new password and the TOTP code follow. */
  passwordStdin: boolean;
  warn: (message: string) => void;
}

/** The code from its source; asked on the terminal with no echo, as the password is. */
export async function readInvite(source: InviteSource, io: InviteIo): Promise<string> {
  let code: string;
  if (source.from === 'argv') code = source.code;
  else if (source.from === 'file') {
    try {
      code = readFileSync(source.path, 'utf8');
      if (process.platform !== 'win32' && statSync(source.path).mode & 0o077)
        io.warn(
          `other users can read the invite file ${source.path}, and with it finish your enrollment first: remove it once you are logged in, and keep the next one 0600.`,
        );
    } catch (err) {
      throw new UsageError(
        `Cannot read the invite file ${source.path}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}.`,
      );
    }
  } else if (io.passwordStdin) code = await readStdinLine(io.stdin);
  else {
    const { ask } = await import('./prompt.ts');
    code = await ask(io.stdin as ReadStream, io.stderr, 'Invite code (from kport users add): ', { hidden: true });
  }
  code = code.trim();
  if (!code)
    throw new UsageError(
      source.from === 'file'
        ? `The invite file ${source.path} is empty: save the code \`kport users add\` printed in it.`
        : 'No invite code was given: run kport login --invite again and paste the code `kport users add` printed.',
    );
  return code;
}

/**
 * The first line of a piped stdin, leaving the rest (the new password and the TOTP code, written
 * once the enrollment is shown) for the reader of the answers: the code must be sent before the
 * script can know the TOTP code, so this cannot wait for the end of the input.
 */
export function readStdinLine(input: Readable): Promise<string> {
  return new Promise<string>((resolveLine, reject) => {
    let taken = Buffer.alloc(0);
    const finish = (settle: () => void) => {
      input.off('readable', onReadable);
      input.off('end', onEnd);
      input.off('error', onError);
      settle();
    };
    const onReadable = () => {
      for (let chunk: Buffer | string | null; (chunk = input.read() as Buffer | string | null) !== null; ) {
        taken = Buffer.concat([taken, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
        const newline = taken.indexOf(0x0a);
        if (newline >= 0) {
          const rest = taken.subarray(newline + 1);
          if (rest.length > 0) input.unshift(rest);
          return finish(() => resolveLine(taken.subarray(0, newline).toString('utf8').replace(/\r$/, '')));
        }
        if (taken.length > MAX_STDIN_BYTES) {
          input.destroy();
          return finish(() =>
            reject(
              new UsageError(
                `--password-stdin read more than ${MAX_STDIN_BYTES / 1024} KiB without a line: pipe the invite code on the first line, the new password on the second and the TOTP code on the third.`,
              ),
            ),
          );
        }
      }
    };
    const onEnd = () => finish(() => resolveLine(taken.toString('utf8')));
    const onError = (err: Error) => finish(() => reject(err));
    input.on('readable', onReadable);
    input.on('end', onEnd);
    input.on('error', onError);
  });
}
