import type { Context } from '../core/context.ts';
import { snakeKeys } from '../core/output.ts';
import type { DashboardEvent } from './discovery-dashboard.ts';

export interface DiscoveryReporter {
  event(e: DashboardEvent): void;
  close(): Promise<void>;
}

/**
 * `discover run`'s events: the ink dashboard on a terminal; otherwise lines on stderr through the
 * logger, so that with --format json they are the `{"time", "level", "message"}` lines every other
 * command writes (the event itself under `event`), and their text is escaped as every message's is.
 */
export async function discoveryReporter(ctx: Context, format: string, group: string): Promise<DiscoveryReporter> {
  if (ctx.stderrIsTTY && format === 'text') {
    const [{ render }, { createElement }, ui] = await Promise.all([import('ink'), import('react'), import('./discovery-dashboard.ts')]);
    let state = ui.initialDashboard(group);
    const view = () => createElement(ui.DiscoveryDashboard, { state, now: ctx.now() });
    const app = render(view(), { stdout: ctx.stderr as NodeJS.WriteStream, exitOnCtrlC: false, patchConsole: false });
    const tick = setInterval(() => app.rerender(view()), 1000);
    return {
      event: (e) => {
        state = ui.reduceDashboard(state, e);
        app.rerender(view());
      },
      close: async () => {
        clearInterval(tick);
        app.unmount();
        await app.waitUntilExit().catch(() => undefined);
      },
    };
  }
  return {
    event: (e) => {
      const message = describe(e, group);
      if (!ctx.logger.json) {
        // A region being scanned is news to a script, not to a person reading the log.
        if (message !== undefined) ctx.logger.info(`${('at' in e ? e.at : ctx.now()).toISOString()} ${message}`);
        return;
      }
      const fields = { event: snakeKeys(e) };
      if (e.type === 'scope' && e.state === 'failed') ctx.logger.warn(message!, fields);
      else ctx.logger.info(message ?? `${(e as { scope: string }).scope}: scanning`, fields);
    },
    close: async () => {},
  };
}

/** One event in words, without its time; undefined for the ones a person need not see. */
export function describe(e: DashboardEvent, group: string): string | undefined {
  switch (e.type) {
    case 'poll-start':
      return 'poll started';
    case 'scope':
      return e.state === 'scanning' ? undefined : `${e.scope}: ${e.state === 'done' ? `${plural(e.clusters ?? 0, 'matching cluster')}` : `FAILED: ${e.error}`}`;
    case 'poll-done': {
      const named = (what: string, names: string[]) =>
        `${names.length} ${what}${names.length > 0 ? ` (${names.slice(0, 10).join(', ')}${names.length > 10 ? `, and ${names.length - 10} more` : ''})` : ''}`;
      const s = e.stats;
      return `poll done: ${plural(s.seen, 'cluster')}, ${named('created', e.changes.created)}, ${named('updated', e.changes.updated)}, ${named('deleted', e.changes.deleted)}, ${s.failures.length} failed, ${plural(s.awsCalls, 'AWS call')}, ${s.durationMs} ms`;
    }
    case 'stopping':
      return e.polling ? 'stopping: finishing the poll in flight (Ctrl-C again to abort)' : 'stopping';
    case 'conflict':
      return `kube_cluster ${e.name} belongs to another discovery group or is static: left alone`;
    case 'sleep':
      return `next poll at ${e.nextPoll.toISOString()}`;
    case 'state':
      return e.state === 'leader' ? `leading discovery group ${group || '(none)'}` : `standby${e.leader ? ` (leader: ${e.leader})` : ''}`;
  }
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
