import type { EKSClient } from '@aws-sdk/client-eks';

export type AuthenticationMode = 'CONFIG_MAP' | 'API_AND_CONFIG_MAP' | 'API';

/** An absent accessConfig means the API default, CONFIG_MAP. */
export function authenticationMode(cluster: { accessConfig?: { authenticationMode?: string } } | undefined): AuthenticationMode {
  const mode = cluster?.accessConfig?.authenticationMode;
  return mode === 'API' || mode === 'API_AND_CONFIG_MAP' ? mode : 'CONFIG_MAP';
}

export function usesAccessEntries(mode: AuthenticationMode): boolean {
  return mode !== 'CONFIG_MAP';
}

/**
 * Grants a principal Kubernetes groups through an EKS access entry (type STANDARD, no access
 * policy: RBAC bindings decide). Creates it, or updates its groups when it exists.
 */
export async function ensureAccessEntry(
  eks: Pick<EKSClient, 'send'>,
  input: { clusterName: string; principalArn: string; groups: string[] },
): Promise<'created' | 'updated' | 'unchanged'> {
  const { CreateAccessEntryCommand, DescribeAccessEntryCommand, UpdateAccessEntryCommand } = await import('@aws-sdk/client-eks');
  try {
    await eks.send(
      new CreateAccessEntryCommand({ clusterName: input.clusterName, principalArn: input.principalArn, kubernetesGroups: input.groups, type: 'STANDARD' }),
    );
    return 'created';
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw err;
  }
  const { accessEntry } = await eks.send(new DescribeAccessEntryCommand({ clusterName: input.clusterName, principalArn: input.principalArn }));
  const current = [...(accessEntry?.kubernetesGroups ?? [])].sort();
  if (current.join('\0') === [...input.groups].sort().join('\0')) return 'unchanged';
  await eks.send(new UpdateAccessEntryCommand({ clusterName: input.clusterName, principalArn: input.principalArn, kubernetesGroups: input.groups }));
  return 'updated';
}
