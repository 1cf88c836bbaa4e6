import { UsageError, UserError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { Context } from '../../core/context.ts';
import type { CastEvent } from '../../recordings/asciicast.ts';
import type { CommandDef } from '../command.ts';
import type { TerminalFilter } from './terminal-filter.ts';

const MAX_SPEED = 1000;

export const play: CommandDef = {
  path: ['play'],
  summary: 'Replay a recorded kubectl exec or attach session in the terminal, at its own speed',
  examples: ['kport play 3f2c9a4e-0d1b-4c56-9a7e-2b8f6c1d0e11', 'kport play SESSION_ID --speed 4', 'kport play SESSION_ID -o json'],
  args: ['<session_id>'],
  options: [{ flags: '--speed <factor>', description: 'replay this many times faster (0.5 is half speed)', default: '1' }],
  async run({ args, opts, ctx, session }) {
    const speed = Number(opts.speed ?? 1);
    if (!Number.isFinite(speed) || speed <= 0 || speed > MAX_SPEED)
      throw new UsageError(`--speed is a number above 0 and at most ${MAX_SPEED}, such as 2 or 0.5 (got ${String(opts.speed)}).`);
    const id = args[0]!;
    // An id that cannot be one is the input's fault (2), locally and through a server alike, before anything is read or sent.
    const { validSessionId } = await import('../../recordings/store.ts');
    if (!validSessionId(id))
      throw new UsageError(`${JSON.stringify(id)} is not a session id (letters, digits, - and _): find sessions with kport recordings ls.`);
    const [{ recordingsService }, { readCast, CastError }, { LineTooLong }, { stoppedExitCode }] = await Promise.all([
      import('../../client/recordings.ts'),
      import('../../recordings/asciicast.ts'),
      import('../../core/lines.ts'),
      import('../../core/stop.ts'),
    ]);
    // Read as it is replayed or written out, from the server or the file: never whole in memory.
    const lines = (await recordingsService(session)).lines(id, ctx.signal);
    const damaged = (err: unknown) =>
      err instanceof CastError || err instanceof LineTooLong
        ? new UserError(`The recording of session ${id} is not asciicast v2 (${err.message}): it was damaged or written by something else.`)
        : err;
    let cast;
    try {
      cast = await readCast(lines);
    } catch (err) {
      throw damaged(err);
    }
    let finished: boolean;
    try {
      if (session.format !== 'text') {
        const { writeCastDocument } = await import('./cast-document.ts');
        finished = await writeCastDocument(ctx.stdout, session.format, id, cast.header, cast.events, ctx.signal);
      } else {
        const { TerminalFilter } = await import('./terminal-filter.ts');
        finished = await replay(cast.events, speed, ctx, new TerminalFilter());
      }
    } catch (err) {
      throw damaged(err);
    } finally {
      await cast.events.return(undefined);
    }
    return finished ? 0 : stoppedExitCode(ctx.signal, { service: false });
  },
};

/**
 * Writes each output event when its time comes (scaled by `speed`), against the start of the
 * replay, so waits do not add up to drift. The pod wrote the output, so only what draws reaches the
 * terminal (terminal-filter.ts). Markers (a recording that stopped early) go to stderr. false when
 * interrupted.
 */
async function replay(events: AsyncIterable<CastEvent>, speed: number, ctx: Context, filter: TerminalFilter): Promise<boolean> {
  const start = performance.now();
  for await (const [time, code, data] of events) {
    const wait = start + (time * 1000) / speed - performance.now();
    if (wait > 0 && !(await sleep(wait, ctx.signal))) return false;
    if (ctx.signal.aborted) return false;
    if (code === 'o' && !ctx.stdout.write(filter.write(data))) await new Promise((resolve) => ctx.stdout.once('drain', resolve));
    if (code === 'm') ctx.stderr.write(`\n[${printable(data)}]\n`);
  }
  // Interrupted while the next event was on its way: the stream ended there, the replay did not.
  return !ctx.signal.aborted;
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      resolve(true);
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', stop, { once: true });
  });
}
