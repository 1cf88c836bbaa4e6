import type { Backend } from '../backend/backend.ts';
import type { Resource } from './resource.ts';

export const DISCOVERY_SERVICE = 'discovery_service';

export interface FetchFailure {
  /** "matcher 0 / account 222222222222 / region us-east-1" */
  scope: string;
  error: string;
  at: string;
}

/** The heartbeat a discovery agent keeps fresh (docs/architecture.md §4). */
export interface DiscoveryServiceSpec {
  host_id: string;
  hostname: string;
  discovery_group: string;
  /** As written by the agent; `kport get` shows it as of now (see `liveState`), never a leader that no longer leads. */
  state: 'leader' | 'standby' | 'starting' | 'stopped' | 'stale';
  started: string;
  /** When this heartbeat was written, and how often the agent writes one: older than three intervals reads as stale. */
  last_heartbeat?: string;
  heartbeat_interval_ms?: number;
  last_poll?: string;
  last_poll_duration_ms?: number;
  next_poll?: string;
  clusters: { seen: number; created: number; updated: number; deleted: number };
  errors: FetchFailure[];
}

export type DiscoveryService = Resource<DiscoveryServiceSpec>;

/**
 * The state to show now: "leader" only for the host whose claim the group's leader key holds now
 * (a heartbeat can outlive its writer by its TTL, 2 x poll_interval + 1 min: a leader stopped while the
 * server was down would otherwise still read as leader beside its successor); "stale" when the agent
 * has missed three heartbeats; "standby" for one that says leader but no longer holds the key.
 */
export function liveState(spec: DiscoveryServiceSpec, leaderHostId: string | undefined, now: number): DiscoveryServiceSpec['state'] {
  if (leaderHostId === spec.host_id) return 'leader';
  if (spec.state === 'stopped') return 'stopped';
  const beat = spec.last_heartbeat ? Date.parse(spec.last_heartbeat) : NaN;
  if (spec.heartbeat_interval_ms && now - beat > 3 * spec.heartbeat_interval_ms + 5_000) return 'stale';
  return spec.state === 'leader' ? 'standby' : spec.state;
}

/**
 * The key whose holder leads a discovery group (src/discovery/leadership.ts); its value, `<host
 * id>/<lease id>`, is the leader's fence. Here, beside the heartbeats, since what a heartbeat shows
 * as its state is read from it.
 */
export function leaderKey(group: string): string {
  return `/leaders/discovery/${group || '(none)'}`;
}

/** The discovery_service heartbeats with their state as of now: the leader is whoever holds its group's leader key. */
export async function withLiveState(backend: Backend, services: DiscoveryService[], now: number): Promise<DiscoveryService[]> {
  const groups = [...new Set(services.map((s) => s.spec.discovery_group))];
  const leaders = new Map(await Promise.all(groups.map(async (g) => [g, (await backend.get(leaderKey(g)))?.value.split('/')[0]] as const)));
  return services.map((s) => ({ ...s, spec: { ...s.spec, state: liveState(s.spec, leaders.get(s.spec.discovery_group), now) } }));
}
