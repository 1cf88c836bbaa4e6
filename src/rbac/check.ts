import type { KubeConfig } from '@kubernetes/client-node';
import { REQUIRED_PERMISSIONS } from './manifests.ts';
import { kubeError } from './kube-errors.ts';

export interface PermissionResult {
  verb: string;
  group: string;
  resource: string;
  allowed: boolean;
  reason?: string;
}

/**
 * Asks the cluster, one access review per permission, whether the proxy's identity has what
 * it needs: the caller itself (SelfSubjectAccessReview) or, with `as`, a mapped user and groups
 * (SubjectAccessReview, which needs a caller allowed to create those).
 */
export async function checkPermissions(kc: KubeConfig, as?: { user: string; groups: string[] }): Promise<PermissionResult[]> {
  const { AuthorizationV1Api } = await import('@kubernetes/client-node');
  const api = kc.makeApiClient(AuthorizationV1Api);
  return Promise.all(
    REQUIRED_PERMISSIONS.map(async (p) => {
      const resourceAttributes = { group: p.group, resource: p.resource, verb: p.verb };
      try {
        const status = as
          ? (await api.createSubjectAccessReview({ body: { spec: { user: as.user, groups: as.groups, resourceAttributes } } })).status
          : (await api.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes } } })).status;
        return { ...p, allowed: Boolean(status?.allowed), ...(status?.reason && { reason: status.reason }) };
      } catch (err) {
        throw kubeError(as ? 'create a SubjectAccessReview' : 'create a SelfSubjectAccessReview', err);
      }
    }),
  );
}

export function describePermission(p: { verb: string; group: string; resource: string }): string {
  return `${p.verb} ${p.group ? `${p.resource}.${p.group}` : p.resource}`;
}
