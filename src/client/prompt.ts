import type { Readable, Writable } from 'node:stream';
import type { ReadStream } from 'node:tty';
import { UsageError, UserError } from '../core/errors.ts';

/**
 * What --password-stdin reads at most. A password and a code are a few dozen bytes; the server
 * refuses long passwords cheaply, and this keeps the client from buffering a pipe without end.
 */
export const MAX_STDIN_BYTES = 16 * 1024;

/** The first `count` lines of a piped stdin (--password-stdin): one answer a line, CR LF or LF. */
export async function readStdinLines(input: Readable, count: number, what: string): Promise<string[]> {
  let text = '';
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (Buffer.byteLength(text) > MAX_STDIN_BYTES) {
      input.destroy();
      throw new UsageError(`--password-stdin read more than ${MAX_STDIN_BYTES / 1024} KiB: it takes ${what}, one a line.`);
    }
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
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
          if (c === '\u0003') return done(() => reject(new UserError('kport login was interrupted.', 130)));
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
