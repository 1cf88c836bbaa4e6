import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { CredentialsError } from '../core/errors.ts';

/** Refresh temporary credentials this long before they expire. */
const REFRESH_MARGIN_MS = 5 * 60_000;

export interface AssumeRole {
  roleArn: string;
  externalId?: string;
}

/**
 * Credentials from the SDK's default chain (env, profile, SSO, IMDS), or an assumed role on top
 * of it. One provider is shared by every client of an account, so a role is assumed once and
 * refreshed before it expires rather than once per region.
 */
export async function credentialsFor(assume: AssumeRole | undefined, region: string): Promise<AwsCredentialIdentityProvider> {
  const { fromNodeProviderChain, fromTemporaryCredentials } = await import('@aws-sdk/credential-providers');
  const base = fromNodeProviderChain();
  if (!assume) return cached(base);
  return cached(
    fromTemporaryCredentials({
      masterCredentials: base,
      params: {
        RoleArn: assume.roleArn,
        RoleSessionName: 'kport-discovery',
        DurationSeconds: 3600,
        ...(assume.externalId && { ExternalId: assume.externalId }),
      },
      clientConfig: { region },
    }),
  );
}

/**
 * Credentials to reach one EKS cluster from this machine (kube login, kube credentials, rbac). The
 * SDK's chain finding none at all is not AWS refusing them: say what is missing and how to set it
 * up, here, before any call. Any other failure (a role that may not be assumed, AWS unreachable) is
 * said by the call that needs them, as before.
 */
export async function credentialsToReach(cluster: { name: string; region: string }, assume?: AssumeRole): Promise<AwsCredentialIdentityProvider> {
  const credentials = await credentialsFor(assume, cluster.region);
  try {
    await credentials();
  } catch (err) {
    if ((err as { name?: string } | undefined)?.name === 'CredentialsProviderError') {
      const said = String((err as Error).message ?? '')
        .split('\n')[0]!
        .replace(/\.$/, '');
      throw new CredentialsError(
        'aws:credentials',
        `No AWS credentials on this machine to reach EKS cluster ${cluster.name} (${cluster.region}): the AWS SDK found none (${said}); run aws configure or aws sso login, or set AWS_PROFILE, and try again.`,
        { cause: err },
      );
    }
  }
  return credentials;
}

export function cached(provider: AwsCredentialIdentityProvider, now: () => number = Date.now): AwsCredentialIdentityProvider {
  let current: Promise<AwsCredentialIdentity> | undefined;
  let expiration: number | undefined;
  return async () => {
    if (!current || (expiration !== undefined && expiration - REFRESH_MARGIN_MS <= now())) {
      current = provider();
      current.then(
        (c) => (expiration = c.expiration?.getTime()),
        () => (current = undefined),
      );
    }
    return current;
  };
}
