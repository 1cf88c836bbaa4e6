import type { Resource } from './resource.ts';

export const AGENT = 'agent';

/** A joined agent as the store knows it; only a hash of its credential is kept. */
export interface AgentSpec {
  host_id: string;
  hostname: string;
  roles: string[];
  joined: string;
  /** The public name of the join token it used, never the token. */
  token_name: string;
  credential_hash: string;
}

export type Agent = Resource<AgentSpec>;
