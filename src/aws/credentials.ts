import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

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
