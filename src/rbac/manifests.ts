import type { V1ClusterRole, V1ClusterRoleBinding } from '@kubernetes/client-node';
import { ORIGINAL_USER_EXTRA, SESSION_ID_EXTRA } from '../kube/forward-headers.ts';

/**
 * The rules of the guide's Step 2: what the proxy needs to impersonate and to check itself; and the
 * two user extras a Kubernetes agent sets so the cluster's own audit log names the person and
 * kport's session (RBAC matches `userextras/<key>` as resource/subresource; any value).
 */
export const PROXY_RULES = [
  { apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'], verbs: ['impersonate'] },
  { apiGroups: ['authentication.k8s.io'], resources: [`userextras/${ORIGINAL_USER_EXTRA}`, `userextras/${SESSION_ID_EXTRA}`], verbs: ['impersonate'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
  { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
];

const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'kport' };

export function clusterRole(name: string): V1ClusterRole {
  return { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels: MANAGED_BY }, rules: PROXY_RULES };
}

export function clusterRoleBinding(name: string, roleName: string, group: string): V1ClusterRoleBinding {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: MANAGED_BY },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
    subjects: [{ kind: 'Group', name: group, apiGroup: 'rbac.authorization.k8s.io' }],
  };
}

/** Each permission `rbac check` asks the cluster about, as SelfSubjectAccessReview attributes (`userextras/<key>`: resource and subresource). */
export const REQUIRED_PERMISSIONS: Array<{ group: string; resource: string; subresource?: string; verb: string }> = PROXY_RULES.flatMap((rule) =>
  rule.resources.flatMap((combined) => {
    const slash = combined.indexOf('/');
    const resource = slash < 0 ? combined : combined.slice(0, slash);
    const subresource = slash < 0 ? undefined : combined.slice(slash + 1);
    return rule.verbs.map((verb) => ({ group: rule.apiGroups[0]!, resource, ...(subresource && { subresource }), verb }));
  }),
);
