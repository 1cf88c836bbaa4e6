import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

export const EKS_TOKEN_PREFIX = 'k8s-aws-v1.';
/** STS accepts the presigned URL for 15 minutes; clients treat it as expired at 14. */
export const EKS_TOKEN_LIFETIME_MS = 14 * 60_000;

export interface EksTokenInput {
  clusterName: string;
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** STS endpoint; default https://sts.<region>.<partition domain>. */
  stsEndpoint?: string;
  now?: Date;
}

export interface EksToken {
  token: string;
  expiresAt: Date;
}

export function stsEndpointFor(region: string): string {
  const domain = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://sts.${region}.${domain}`;
}

/**
 * The bearer token aws-iam-authenticator verifies: a presigned STS GetCallerIdentity URL whose
 * signed headers are host and x-k8s-aws-id (the cluster name), valid 60 seconds to sign.
 */
export async function createEksToken(input: EksTokenInput): Promise<EksToken> {
  const now = input.now ?? new Date();
  const url = new URL(input.stsEndpoint ?? stsEndpointFor(input.region));
  const signer = new SignatureV4({ service: 'sts', region: input.region, credentials: input.credentials, sha256: Sha256 });
  const request = new HttpRequest({
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port && { port: Number(url.port) }),
    path: url.pathname,
    query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
    headers: { host: url.host, 'x-k8s-aws-id': input.clusterName },
  });
  const signed = await signer.presign(request, { expiresIn: 60, signingDate: now, unhoistableHeaders: new Set(['x-k8s-aws-id']) });
  const query = Object.entries(signed.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  const presigned = `${url.protocol}//${url.host}${signed.path}?${query}`;
  return {
    token: EKS_TOKEN_PREFIX + Buffer.from(presigned).toString('base64url'),
    expiresAt: new Date(now.getTime() + EKS_TOKEN_LIFETIME_MS),
  };
}

/** The presigned URL inside a token, for checks and tests. */
export function decodeEksToken(token: string): string {
  if (!token.startsWith(EKS_TOKEN_PREFIX)) throw new Error(`not an EKS token: it must start with ${EKS_TOKEN_PREFIX}`);
  return Buffer.from(token.slice(EKS_TOKEN_PREFIX.length), 'base64url').toString('utf8');
}
