import type { Resource } from './resource.ts';

export const AUDIT_EVENT = 'audit_event';

/** One thing the server allowed or refused: who (host or token name, never a secret), what, from where. */
export interface AuditEventSpec {
  time: string;
  /** agent.join, agent.renew, agent.call, user.login, user.call, user.add, ... */
  type: string;
  outcome: 'allowed' | 'refused';
  host_id?: string;
  /** The person who acted, logged in or was refused (a kport user name). */
  user?: string;
  hostname?: string;
  roles?: string[];
  /** The join token's public name. */
  token_name?: string;
  /** What was asked: the backend operation and key, or the route. */
  action?: string;
  reason?: string;
  remote_addr?: string;
  /** kube.request: what a person asked of a cluster through the server, and as whom it went. */
  cluster?: string;
  kube_user?: string;
  kube_groups?: string[];
  verb?: string;
  resource?: string;
  namespace?: string;
  name?: string;
  status?: number;
  duration_ms?: number;
  /** The id the agent sends the cluster as the kport.dev/session-id user extra: joins the cluster's audit log to this. */
  session_id?: string;
}

export type AuditEvent = Resource<AuditEventSpec>;
