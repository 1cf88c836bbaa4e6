// One watch as an HTTP answer (ndjson): the events a caller may see of one prefix, for as long as
// the caller is still there. Agents' and people's watches differ only in `show` and `alive`.
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { WatchEvent } from '../../backend/backend.ts';
import type { WatchCount } from './agent-limits.ts';
import { WatchGate } from './watch-gate.ts';
import type { WatchHub } from '../cache/watch-hub.ts';

const WATCH_RECHECK_MS = 5_000;
const MAX_WATCH_BACKLOG = 1 << 20;
const WATCH_KEEPALIVE_MS = 30_000;

export interface WatchStreamDeps {
  hub: WatchHub;
  count: WatchCount;
  /** Every watch open now, so the server's close ends them. */
  open: Set<AbortController>;
}

/** One watch stream: events as `show` lets the caller see them, ended when `alive` says the caller is gone. */
export async function streamWatch(
  deps: WatchStreamDeps,
  who: string,
  prefix: string,
  show: (event: WatchEvent) => WatchEvent | undefined,
  alive: (batch?: WatchEvent[]) => Promise<boolean>,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
): Promise<void> {
  const leave = deps.count.enter(who);
  const stop = new AbortController();
  deps.open.add(stop);
  req.on('close', () => stop.abort());
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  res.write('\n');
  const gate = new WatchGate<WatchEvent>({
    stillThere: alive,
    deliver: (event) => {
      const shown = show(event);
      // A client that does not read its watch is cut off rather than buffered for without end.
      if (res.writableLength > MAX_WATCH_BACKLOG) stop.abort();
      else if (shown) res.write(`${JSON.stringify(shown)}\n`);
    },
    removed: () => stop.abort(),
  });
  // No event written after a removal or a lock reaches the caller: the gate reads the record after each.
  const unsubscribe = deps.hub.subscribe(prefix, (event) => gate.push(event));
  const recheck = setInterval(() => {
    void alive().then(
      (yes) => yes || stop.abort(),
      () => undefined,
    );
  }, WATCH_RECHECK_MS);
  // A quiet watch still sends something, so a NAT or a proxy between sees it alive (clients skip empty lines).
  const keepalive = setInterval(() => res.write('\n'), WATCH_KEEPALIVE_MS);
  await new Promise<void>((resolve) => (stop.signal.aborted ? resolve() : stop.signal.addEventListener('abort', () => resolve(), { once: true })));
  unsubscribe();
  gate.close();
  clearInterval(recheck);
  clearInterval(keepalive);
  deps.open.delete(stop);
  leave();
  res.end();
}

/** The newest store revision among `events`; undefined when there are none. */
export function newestRevision(events: WatchEvent[]): number | undefined {
  let newest: number | undefined;
  for (const e of events) newest = Math.max(newest ?? 0, e.type === 'put' ? e.item.revision : e.revision);
  return newest;
}
