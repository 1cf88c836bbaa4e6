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
  /**
   * secret: SHA-256 of a random secret (local mode); x509: SHA-256 of the host key's SPKI (network
   * mode). Always stored; absent from what the server shows people (resources/views.ts).
   */
  credential_hash?: string;
  credential_type?: 'secret' | 'x509';
  /** Network mode: the group the agent joined for, which its certificate carries. */
  discovery_group?: string;
  /** Network mode: where it last called from, and when (rewritten when its address changes, else at most every 10 minutes). */
  address?: string;
  last_seen?: string;
}

export type Agent = Resource<AgentSpec>;
