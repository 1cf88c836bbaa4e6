import { Writable } from 'node:stream';
import { createContext, type Context } from '../../core/context.ts';
import { Session } from '../session.ts';
import { kindPrefix } from '../../resources/resource.ts';

/**
 * `kport [-c FILE] [--data-dir DIR] __complete KIND`: the names of one kind, one per line, for the
 * shell completion scripts. Hidden from help; quiet and exit 0 whatever happens (a completion
 * must never print an error into the command line), and reads keys only, to stay well under
 * the 150 ms a TAB may take.
 */
export async function completeNames(argv: string[], ctx: Context): Promise<number> {
  const globals: { config?: string; dataDir?: string } = {};
  let kind: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === '-c' || w === '--config') globals.config = argv[++i];
    else if (w === '--data-dir') globals.dataDir = argv[++i];
    else if (w.startsWith('--config=')) globals.config = w.slice('--config='.length);
    else if (w.startsWith('--data-dir=')) globals.dataDir = w.slice('--data-dir='.length);
    else if (w !== '__complete' && !w.startsWith('-')) kind = w;
  }
  // Warnings (a too-open data dir, config notes) must not land in the command line being completed.
  // Through a login's server a TAB waits at most a second for it, never the outage bound of a command.
  const quiet = createContext({
    ...ctx,
    signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(1000)]),
    stderr: new Writable({ write: (_chunk, _encoding, done) => done() }),
  });
  const session = new Session(quiet, globals);
  try {
    if (!kind || !/^[a-z_]+$/.test(kind)) return 0;
    const prefix = kindPrefix(kind);
    const names = (await (await session.backend()).list(prefix)).map((item) => item.key.slice(prefix.length));
    if (names.length > 0) ctx.stdout.write(`${names.join('\n')}\n`);
  } catch {
    // No store, no config: nothing to offer.
  } finally {
    await session.close().catch(() => undefined);
  }
  return 0;
}
