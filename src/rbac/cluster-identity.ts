import type { AssumeRole } from '../aws/credentials.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { KubeCluster } from '../resources/kube-cluster.ts';
import { proxyIdentity } from '../kube/targets.ts';

const accountOf = (roleArn: string) => roleArn.split(':')[4];

/**
 * The role kport's own config assumes in the cluster's account, for reaching a cluster of another
 * account than the caller's: the kubernetes_service entry that serves it, then any other
 * kubernetes_service entry, then a discovery matcher, whose role in that account found it.
 */
export function roleForAccount(
  config: Pick<LoadedConfig, 'kubernetes_service' | 'discovery_service'>,
  cluster: KubeCluster,
): { assume: AssumeRole; from: string } | undefined {
  const account = cluster.spec.aws?.account_id;
  const serving = proxyIdentity(config.kubernetes_service, cluster);
  const candidates: Array<{ assume: AssumeRole; from: string }> = [
    ...(serving ? [{ assume: serving, from: 'kubernetes_service.resources' }] : []),
    ...(config.kubernetes_service?.resources ?? []).flatMap((r) =>
      r.assume_role_arn ? [{ assume: { roleArn: r.assume_role_arn, externalId: r.external_id }, from: 'kubernetes_service.resources' }] : [],
    ),
    ...(config.discovery_service?.aws ?? []).flatMap((m) =>
      m.assume_role_arn ? [{ assume: { roleArn: m.assume_role_arn, externalId: m.external_id }, from: 'discovery_service.aws' }] : [],
    ),
  ];
  return candidates.find((c) => accountOf(c.assume.roleArn) === account);
}
