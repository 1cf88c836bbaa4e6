import type { Readable, Writable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import { UsageError, UserError } from '../core/errors.ts';

/**
 * What --password-stdin reads at most. A password and a code are a few dozen bytes; the server
 * refuses long passwords cheaply, and this keeps the client from buffering a pipe without end.
 */
export const MAX_STDIN_BYTES = 16 * 1024;

/** How long a short read of stdin waits for the Ctrl-C that may have ended it (a few ms when it did). */
const SIGNAL_GRACE_MS = 100;

const interrupted = () => new UserError('kport login was interrupted.', 130);

/**
 * The first `count` lines of a piped stdin (--password-stdin): one answer a line, CR LF or LF.
 * Ctrl-C (`signal`) ends the wait with exit 130, whether the pipe stays open or its writer, in the
 * same process group, died of the same Ctrl-C and closed it (then the pipe's end can come first).
 */
export async function readStdinLines(input: Readable, count: number, what: string, signal?: AbortSignal): Promise<string[]> {
  let text = '';
  const stop = () => input.destroy();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      if (Buffer.byteLength(text) > MAX_STDIN_BYTES) {
        input.destroy();
        throw new UsageError(`--password-stdin read more than ${MAX_STDIN_BYTES / 1024} KiB: it takes ${what}, one a line.`);
      }
    }
  } catch (err) {
    if (signal?.aborted) throw interrupted();
    throw err;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  if (signal?.aborted) throw interrupted();
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  if ((lines.length < count || lines.slice(0, count).some((l) => l === '')) && signal) {
    // The end of the pipe and the Ctrl-C that killed its writer reach this process together, and
    // the end is often seen first (the signal only at the event loop's next poll): a short read
    // waits a moment for such a signal before it is said to be one.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, SIGNAL_GRACE_MS);
      function done() {
        clearTimeout(timer);
        signal!.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
    if (signal.aborted) throw interrupted();
  }
  if (lines.length < count || lines.slice(0, count).some((l) => l === '')) {
    throw new UsageError(`--password-stdin read ${lines.filter(Boolean).length === 0 ? 'nothing' : 'too few lines'}: pipe ${what}, one a line.`);
  }
  return lines.slice(0, count);
}

/**
 * One prompt on the terminal. `hidden`: nothing is echoed (raw mode, as ssh and sudo ask), so the
 * password is neither on screen nor in the scrollback. Ctrl-C ends the login (exit 130).
 */
export async function ask(input: ReadStream, output: Writable, question: string, opts: { hidden: boolean }): Promise<string> {
  output.write(question);
  const wasRaw = input.isRaw;
  input.setRawMode(true);
  input.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let answer = '';
      const onData = (chunk: Buffer | string) => {
        for (const c of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
          if (c === '\r' || c === '\n') return done(() => resolve(answer));
          if (c === '\u0003') return done(() => reject(interrupted()));
          if (c === '\u0004' && answer === '') return done(() => reject(new UserError('kport login read no answer (end of input): run it again.', 2)));
          if (c === '\u007f' || c === '\b') {
            if (answer.length > 0) {
              answer = [...answer].slice(0, -1).join('');
              if (!opts.hidden) output.write('\b \b');
            }
            continue;
          }
          if (c < ' ') continue;
          answer += c;
          if (!opts.hidden) output.write(c);
        }
      };
      const done = (settle: () => void) => {
        input.off('data', onData);
        output.write('\n');
        settle();
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(wasRaw);
    input.pause();
  }
}
