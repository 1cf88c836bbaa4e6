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
  // Kubernetes requests (kube.request) and exec/attach sessions (session.start, session.end).
  cluster?: string;
  kube_user?: string;
  kube_groups?: string[];
  verb?: string;
  resource?: string;
  namespace?: string;
  name?: string;
  status?: number;
  duration_ms?: number;
  /** Joins kport's audit to the cluster's own (Impersonate-Extra kport.dev/session-id) and names a recording. */
  session_id?: string;
  pod?: string;
  container?: string;
  command?: string;
  /** Whether the session's output was recorded (kport play SESSION_ID). */
  recorded?: boolean;
  /** Bytes of the session's recording. */
  bytes?: number;
}

export type AuditEvent = Resource<AuditEventSpec>;
