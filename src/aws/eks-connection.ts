import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { AssumeRole } from './credentials.ts';
import type { EksToken } from './eks-token.ts';

/** Everything needed to talk to one EKS cluster's API server as an AWS identity. */
export interface EksConnection {
  name: string;
  region: string;
  endpoint: string;
  caData: string;
  authenticationMode?: string;
  credentials: AwsCredentialIdentityProvider;
  /** A fresh bearer token (valid 14 minutes) for the cluster's API server. */
  token(): Promise<EksToken>;
}

/**
 * The one place that turns an EKS cluster into a connection: credentials (the SDK chain or an
 * assumed role), endpoint and CA from DescribeCluster, and EKS tokens signed with those
 * credentials. The local proxy, `rbac` and the Kubernetes agents all reach clusters through it.
 */
export async function connectEks(cluster: { name: string; region: string }, opts: { assume?: AssumeRole; stsEndpoint?: string }): Promise<EksConnection> {
  const [{ credentialsToReach }, { describeEksEndpoint }, { createEksToken }] = await Promise.all([
    import('./credentials.ts'),
    import('./eks-cluster.ts'),
    import('./eks-token.ts'),
  ]);
  const credentials = await credentialsToReach(cluster, opts.assume);
  const endpoint = await describeEksEndpoint(cluster.name, cluster.region, credentials);
  return {
    ...cluster,
    ...endpoint,
    credentials,
    token: () => createEksToken({ clusterName: cluster.name, region: cluster.region, credentials, stsEndpoint: opts.stsEndpoint }),
  };
}
