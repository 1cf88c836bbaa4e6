import type { Resource } from './resource.ts';

export const DISCOVERY_SERVICE = 'discovery_service';

export interface FetchFailure {
  /** "matcher 0 / account 222222222222 / region us-east-1" */
  scope: string;
  error: string;
  at: string;
}

/** The heartbeat a discovery agent keeps fresh (DESIGN.md §4). */
export interface DiscoveryServiceSpec {
  host_id: string;
  hostname: string;
  discovery_group: string;
  state: 'leader' | 'standby' | 'starting' | 'stopped';
  started: string;
  last_poll?: string;
  last_poll_duration_ms?: number;
  next_poll?: string;
  clusters: { seen: number; created: number; updated: number; deleted: number };
  errors: FetchFailure[];
}

export type DiscoveryService = Resource<DiscoveryServiceSpec>;
