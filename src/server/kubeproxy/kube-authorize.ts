import type { IncomingHttpHeaders } from 'node:http';
import { impersonationFromHeaders } from '../../kube/access.ts';
import { requestInfo, unsafePathReason } from '../../kube/request-info.ts';
import type { KportCode } from '../../kube/status.ts';
import type { KubeCluster } from '../../resources/kube-cluster.ts';
import type { Person } from '../auth/people-routes.ts';
import type { ClusterRoute } from './kube-route-path.ts';
import { requestRefusal, requestTarget } from '../events/recording/decision.ts';

// The server's one Kubernetes request authoriser (Teleport's lib/kube/proxy authorizer): whether a
// person, by their current roles, may send this request to this cluster, and as which Kubernetes
// user and groups. The routing asks it before anything reaches an agent, and again (reauthorize)
// when roles change under an open request. Per-session MFA and access-request roles plug in here.

/** A refusal as the routing answers and audits it. `reason` is the audit's, when it differs from what the person is told. */
export interface KubeRefusal {
  code: KportCode;
  message: string;
  reason?: string;
  user?: string;
  cluster?: string;
  /** The path the audit names, when it is the cluster's path rather than the URL asked for. */
  path?: string;
}

/** An allowed request: the person, the cluster, the path to send, the Kubernetes user and groups to send it as. */
export interface KubeGrant {
  person: Person;
  cluster: KubeCluster;
  path: string;
  user: string;
  groups: string[];
}

export interface KubeRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** The cluster the request names (kube-route-path.ts), undefined when it names none. */
  route: ClusterRoute | undefined;
  /** That cluster as the routing's cache holds it, undefined when there is no such cluster. */
  cluster: KubeCluster | undefined;
  /** An upgrade (exec, attach, port-forward): its recording rules are the recorder's (UpgradeHooks.refusal). */
  upgrade?: boolean;
}

/** Allow (with the Kubernetes identity) or refuse `request` for `person`. */
export function authorizeKube(person: Person, request: KubeRequest): KubeGrant | { refused: KubeRefusal } {
  const { route, cluster } = request;
  const who = person.caller.person;
  const labels = cluster?.metadata.labels ?? {};
  const access = cluster && person.roles.kubeAccess(labels);
  if (!route || !cluster || !access) {
    // A cluster the roles do not allow answers exactly as one that does not exist (Teleport's rule); only the audit trail tells them apart.
    const name = route?.name ?? '';
    const reason = !route
      ? 'the request names no cluster'
      : !cluster
        ? `no kube_cluster "${name || route.sni}"`
        : `the roles of ${who} do not allow kube_cluster "${name}"`;
    // Named by TLS server name, the answer repeats that name: the cluster's own name would tell a guess that exists from one that does not.
    const shown = route?.sni ? `the kube_cluster of TLS server name "${route.sni}"` : `kube_cluster "${name}"`;
    // 403 with the sentence as text: what kubectl, helm and k9s print on their first call, discovery (status.ts).
    return { refused: { code: 403, message: `${shown} not found: \`kport kube ls\` lists the clusters you can reach`, reason, user: who, cluster: name } };
  }
  const name = cluster.metadata.name;
  const unsafe = unsafePathReason(route.path);
  if (unsafe) return { refused: { code: 400, message: `kport refused the request: ${unsafe}`, user: who, cluster: name } };
  const identity = impersonationFromHeaders(access, request.headers);
  if (!identity.ok) return { refused: { code: 403, message: identity.message, user: who, cluster: name } };
  if (!request.upgrade) {
    // A kubelet command (nodes/NAME/proxy/run) a role requires recorded: refused, as its upgrades are (recording/decision.ts).
    const info = requestInfo(request.method, route.path);
    const unrecorded =
      info.resource === 'nodes' && info.subresource === 'proxy' ? requestRefusal(requestTarget(info, route.path), person.roles, labels) : undefined;
    if (unrecorded) return { refused: { code: 403, message: unrecorded, user: who, cluster: name, path: route.path } };
  }
  return { person, cluster, path: route.path, user: identity.user, groups: identity.groups };
}

/** An open request, as it was allowed. */
export interface OpenGrant {
  cluster: string;
  headers: IncomingHttpHeaders;
  user: string;
  groups: string[];
}

/**
 * Whether an open request is still allowed by `person`'s roles as they are now (`labels`: its
 * cluster's, undefined when the cluster is gone): undefined when it is, else why not.
 */
export function reauthorizeKube(person: Person, labels: Record<string, string> | undefined, open: OpenGrant): string | undefined {
  const access = labels && person.roles.kubeAccess(labels);
  const identity = access && impersonationFromHeaders(access, open.headers);
  if (identity?.ok && identity.user === open.user && identity.groups.join(',') === open.groups.join(',')) return undefined;
  return `the roles of ${person.caller.person} no longer allow kube_cluster "${open.cluster}"${identity ? ' as the Kubernetes user and groups it was sent as' : ''}`;
}
