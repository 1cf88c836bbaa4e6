import type { KubeConfig } from '@kubernetes/client-node';
import { REQUIRED_PERMISSIONS } from './manifests.ts';
import { expectKind, kubeError } from './kube-errors.ts';

export interface PermissionResult {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
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
      const resourceAttributes = { group: p.group, resource: p.resource, ...(p.subresource && { subresource: p.subresource }), verb: p.verb };
      const what = as ? 'create a SubjectAccessReview' : 'create a SelfSubjectAccessReview';
      let review: { kind?: string; status?: { allowed: boolean; reason?: string } };
      try {
        review = as
          ? await api.createSubjectAccessReview({ body: { spec: { user: as.user, groups: as.groups, resourceAttributes } } })
          : await api.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes } } });
      } catch (err) {
        throw kubeError(what, err);
      }
      // Otherwise a web page reads as "every permission is missing".
      const { status } = expectKind(kc.getCurrentCluster()?.server, what, as ? 'SubjectAccessReview' : 'SelfSubjectAccessReview', review);
      return { ...p, allowed: Boolean(status?.allowed), ...(status?.reason && { reason: status.reason }) };
    }),
  );
}

export function describePermission(p: { verb: string; group: string; resource: string; subresource?: string }): string {
  return `${p.verb} ${p.group ? `${p.resource}.${p.group}` : p.resource}${p.subresource ? `/${p.subresource}` : ''}`;
}
