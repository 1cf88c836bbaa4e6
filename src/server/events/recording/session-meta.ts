// What a recorded session says of itself: the header's title and `kport` key, and the fields its
// session.start and session.end audit events carry.
import type { CastSession } from '../../../recordings/asciicast.ts';

export interface SessionMeta {
  sessionId: string;
  person: string;
  cluster: string;
  kubeUser: string;
  kubeGroups: string[];
  namespace?: string;
  pod?: string;
  container?: string;
  command?: string;
  /** The WebSocket subprotocol asked for (Sec-WebSocket-Protocol), or `SPDY/3.1`. */
  protocol: string;
  /** exec (the default) or attach. */
  kind?: 'exec' | 'attach';
  remoteAddr?: string;
}

export function title(meta: SessionMeta): string {
  const target = `${meta.namespace ?? '?'}/${meta.pod ?? '?'}${meta.container ? ` -c ${meta.container}` : ''}`;
  return `${meta.person} on ${meta.cluster}: ${meta.kind ?? 'exec'} ${target}${meta.command ? ` -- ${meta.command}` : ''}`;
}

/** Whose session the file holds, in its header: what kport recordings ls shows and the budget counts by. */
export function castSession(meta: SessionMeta): CastSession {
  return {
    session_id: meta.sessionId,
    user: meta.person,
    cluster: meta.cluster,
    kind: meta.kind ?? 'exec',
    ...(meta.namespace && { namespace: meta.namespace }),
    ...(meta.pod && { pod: meta.pod }),
    ...(meta.container && { container: meta.container }),
    ...(meta.command && { command: meta.command }),
  };
}

/** The audit event's fields of a session: its header's, with the Kubernetes identity and the address. */
export function auditFields(meta: SessionMeta) {
  const { kind, ...session } = castSession(meta);
  return {
    ...session,
    kube_user: meta.kubeUser,
    kube_groups: meta.kubeGroups,
    action: kind,
    ...(meta.remoteAddr && { remote_addr: meta.remoteAddr }),
  };
}
