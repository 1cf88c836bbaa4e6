import type { V1ClusterRole, V1ClusterRoleBinding } from '@kubernetes/client-node';

/** The rules of the guide's Step 2: what the proxy needs to impersonate and to check itself. */
export const PROXY_RULES = [
  { apiGroups: [''], resources: ['users', 'groups', 'serviceaccounts'], verbs: ['impersonate'] },
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

/** Each permission `rbac check` asks the cluster about, as SelfSubjectAccessReview attributes. */
export const REQUIRED_PERMISSIONS = PROXY_RULES.flatMap((rule) =>
  rule.resources.flatMap((resource) => rule.verbs.map((verb) => ({ group: rule.apiGroups[0]!, resource, verb }))),
);
