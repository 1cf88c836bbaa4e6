import { formatBytes } from '../../core/bytes.ts';
import { UsageError } from '../../core/errors.ts';
import { formatTime, renderTable, serialize } from '../../core/output.ts';
import { DEFAULT_LIST_LIMIT as DEFAULT_LIMIT, MAX_LIST_LIMIT as MAX_LIMIT } from '../../recordings/store.ts';
import type { CommandDef } from '../command.ts';

export const recordingsLs: CommandDef = {
  path: ['recordings', 'ls'],
  summary: 'List recorded kubectl exec and attach sessions, newest first: who, cluster, pod, start, duration',
  examples: ['kport recordings ls', 'kport recordings ls --limit 200 -o json'],
  options: [{ flags: '--limit <n>', description: `at most this many, the newest (1 to ${MAX_LIMIT})`, default: String(DEFAULT_LIMIT) }],
  async run({ opts, ctx, session }) {
    const limit = Number(opts.limit ?? DEFAULT_LIMIT);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
      throw new UsageError(`--limit is a whole number from 1 to ${MAX_LIMIT}, such as 200 (got ${String(opts.limit)}).`);
    const { recordingsService } = await import('../../client/recordings.ts');
    const recordings = await (await recordingsService(session)).list(limit);
    if (session.format !== 'text') return void ctx.stdout.write(serialize(recordings, session.format));
    if (recordings.length === 0 && ctx.stdoutIsTTY)
      return void ctx.stderr.write('No session recordings yet: kubectl exec and attach through the server are recorded.\n');
    const tty = ctx.stdoutIsTTY;
    const rows = recordings.map((r) => [
      r.session_id,
      r.user ?? '-',
      r.cluster ?? '-',
      r.pod ? `${r.namespace ?? '?'}/${r.pod}` : '-',
      r.start ? formatTime(r.start, tty) : '-',
      r.duration_ms === null ? '-' : elapsed(r.duration_ms),
      formatBytes(r.size_bytes),
    ]);
    ctx.stdout.write(renderTable(['Session ID', 'User', 'Cluster', 'Pod', 'Started', 'Duration', 'Size'], rows, { tty }));
  },
};

/** 1h2m3s, 4m5s, 12s: whole seconds, as a session's length is read. */
function elapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s % 60}s`;
}
