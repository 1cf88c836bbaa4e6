import { setTimeout as sleep } from 'node:timers/promises';
import { FencedOutError } from '../backend/backend.ts';
import type { DiscoveryEngine, PollStats } from './engine.ts';
import type { Heartbeat } from './heartbeat.ts';
import type { GroupLeadership } from './leadership.ts';

export interface AgentOptions {
  engine: DiscoveryEngine;
  heartbeat: Heartbeat;
  leadership: GroupLeadership;
  pollIntervalMs: number;
  once: boolean;
  signal: AbortSignal;
  now: () => Date;
  onSleep?: (nextPoll: Date) => void;
  onState?: (state: 'leader' | 'standby', leader?: string) => void;
  random?: () => number;
}

/**
 * The agent's life: wait to lead the group (heartbeating as standby), then poll at start and
 * every poll interval less up to 10% jitter, so agents started together spread out. A stop
 * request lets the current poll finish its writes; losing the lease returns to standby.
 */
export async function runAgent(opts: AgentOptions): Promise<PollStats | undefined> {
  const random = opts.random ?? Math.random;
  let last: PollStats | undefined;
  // One beat at a time: while the store (or the server) is unreachable, a beat waits, and others must not pile up behind it.
  let beating = false;
  const standbyBeat = setInterval(() => {
    if (beating) return;
    beating = true;
    void opts.heartbeat
      .update()
      .catch(() => undefined)
      .finally(() => (beating = false));
  }, opts.heartbeat.intervalMs);
  try {
    while (!opts.signal.aborted) {
      await opts.heartbeat.update({ state: 'standby' });
      opts.onState?.('standby', await opts.leadership.leader().catch(() => undefined));
      // --once does not wait for a live leader forever: two lease lifetimes at most.
      const waitUntil = opts.once ? AbortSignal.any([opts.signal, AbortSignal.timeout(2 * opts.leadership.ttlMs)]) : opts.signal;
      if (!(await opts.leadership.acquire(waitUntil))) break;
      await opts.heartbeat.update({ state: 'leader' });
      opts.onState?.('leader');
      const stop = AbortSignal.any([opts.signal, opts.leadership.lostSignal]);
      while (!stop.aborted) {
        try {
          last = (await opts.engine.poll(opts.leadership.fence)).stats;
        } catch (err) {
          if (err instanceof FencedOutError) break;
          throw err;
        }
        const delay = opts.once ? 0 : Math.round(opts.pollIntervalMs * (1 - 0.1 * random()));
        const nextPoll = new Date(opts.now().getTime() + delay);
        await opts.heartbeat.update({
          last_poll: opts.now().toISOString(),
          last_poll_duration_ms: last.durationMs,
          ...(opts.once ? {} : { next_poll: nextPoll.toISOString() }),
          clusters: { seen: last.seen, created: last.created, updated: last.updated, deleted: last.deleted },
          errors: last.failures,
        });
        if (opts.once) return last;
        opts.onSleep?.(nextPoll);
        await sleep(delay, undefined, { signal: stop }).catch(() => undefined);
      }
    }
    return last;
  } finally {
    clearInterval(standbyBeat);
    await opts.leadership.release();
    await opts.heartbeat.update({ state: 'stopped' }).catch(() => undefined);
  }
}
