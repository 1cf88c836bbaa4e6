import { setTimeout as sleep } from 'node:timers/promises';
import type { DiscoveryEngine, PollStats } from './engine.ts';
import type { Heartbeat } from './heartbeat.ts';

export interface AgentOptions {
  engine: DiscoveryEngine;
  heartbeat: Heartbeat;
  pollIntervalMs: number;
  once: boolean;
  signal: AbortSignal;
  now: () => Date;
  onSleep?: (nextPoll: Date) => void;
  random?: () => number;
}

/**
 * The poll loop: the first poll at start, then every poll interval less up to 10% jitter (so
 * agents started together spread out). A stop request lets the current poll finish its writes.
 */
export async function runAgent(opts: AgentOptions): Promise<PollStats | undefined> {
  const random = opts.random ?? Math.random;
  let last: PollStats | undefined;
  await opts.heartbeat.update({ state: 'leader' });
  while (!opts.signal.aborted) {
    const { stats } = await opts.engine.poll();
    last = stats;
    const delay = opts.once ? 0 : Math.round(opts.pollIntervalMs * (1 - 0.1 * random()));
    const nextPoll = new Date(opts.now().getTime() + delay);
    await opts.heartbeat.update({
      last_poll: opts.now().toISOString(),
      last_poll_duration_ms: stats.durationMs,
      ...(opts.once ? {} : { next_poll: nextPoll.toISOString() }),
      clusters: { seen: stats.seen, created: stats.created, updated: stats.updated, deleted: stats.deleted },
      errors: stats.failures,
    });
    if (opts.once) break;
    opts.onSleep?.(nextPoll);
    await sleep(delay, undefined, { signal: opts.signal }).catch(() => undefined);
  }
  await opts.heartbeat.update({ state: 'stopped' });
  return last;
}
