import { requestInfo } from '../../kube/request-info.ts';
import type { ServerAudit } from '../events/audit.ts';
import type { KubeGrant, KubeRefusal } from './kube-authorize.ts';
import type { Outcome } from './tunnel-forward.ts';

// The one kube.request audit event each Kubernetes request at the server writes: refused (by the
// authoriser, a limit, or no agent) or allowed (with its outcome at the agent).

/** Milliseconds since `started` (performance.now()), to two decimals. */
const since = (started: number) => Math.round((performance.now() - started) * 100) / 100;

export function auditRefused(audit: ServerAudit, refused: KubeRefusal, method: string, url: string, remote: string, started: number): void {
  const info = requestInfo(method, url);
  audit.queue({
    type: 'kube.request',
    outcome: 'refused',
    ...(refused.user && { user: refused.user }),
    ...(refused.cluster !== undefined && { cluster: refused.cluster }),
    verb: info.verb,
    action: `${method} ${url}`,
    status: refused.code,
    duration_ms: since(started),
    reason: refused.reason ?? refused.message,
    remote_addr: remote,
  });
}

export function auditAllowed(audit: ServerAudit, grant: KubeGrant, method: string, remote: string, started: number, outcome: Outcome): void {
  const info = requestInfo(method, grant.path);
  audit.queue({
    type: 'kube.request',
    outcome: 'allowed',
    user: grant.person.caller.person,
    kube_user: grant.user,
    kube_groups: grant.groups,
    cluster: grant.cluster.metadata.name,
    verb: info.verb,
    resource: info.subresource ? `${info.resource}/${info.subresource}` : info.resource,
    namespace: info.namespace,
    name: info.name,
    status: outcome.status,
    ...(outcome.hostId && { host_id: outcome.hostId }),
    ...(outcome.sessionId && { session_id: outcome.sessionId }),
    duration_ms: since(started),
    ...(outcome.error && { reason: outcome.error }),
    remote_addr: remote,
  });
}
