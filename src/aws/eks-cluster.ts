import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { CredentialsError, ExternalError } from '../core/errors.ts';
import { nameEndpointOnError } from './endpoint-on-error.ts';
import { classifyAwsError } from './errors.ts';

export interface EksEndpoint {
  endpoint: string;
  caData: string;
  authenticationMode?: string;
}

/** The API endpoint and CA of an EKS cluster, from DescribeCluster. */
export async function describeEksEndpoint(name: string, region: string, credentials: AwsCredentialIdentityProvider): Promise<EksEndpoint> {
  const { EKSClient, DescribeClusterCommand } = await import('@aws-sdk/client-eks');
  const eks = nameEndpointOnError(new EKSClient({ region, credentials, maxAttempts: 5 }));
  try {
    const { cluster } = await eks.send(new DescribeClusterCommand({ name }));
    if (!cluster?.endpoint || !cluster.certificateAuthority?.data) {
      throw new ExternalError(
        'eks:DescribeCluster',
        `EKS cluster ${name} in ${region} has no endpoint yet (status ${cluster?.status ?? 'unknown'}): wait until it is ACTIVE.`,
      );
    }
    return { endpoint: cluster.endpoint, caData: cluster.certificateAuthority.data, authenticationMode: cluster.accessConfig?.authenticationMode };
  } catch (err) {
    if (err instanceof ExternalError) throw err;
    const failure = classifyAwsError(err);
    if (failure.kind === 'credentials')
      throw new CredentialsError('eks:DescribeCluster', `AWS rejected the credentials describing EKS cluster ${name}: ${failure.message}`, { cause: err });
    if (failure.kind === 'access-denied')
      throw new CredentialsError('eks:DescribeCluster', `AccessDenied: eks:DescribeCluster on ${name} in ${region} is not allowed for these AWS credentials.`, {
        cause: err,
      });
    throw new ExternalError('eks:DescribeCluster', `Cannot describe EKS cluster ${name} in ${region}: ${failure.message.replace(/\.$/, '')}.`, 1, {
      cause: err,
    });
  } finally {
    eks.destroy();
  }
}
