import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { nameEndpointOnError } from './endpoint-on-error.ts';
import { partitionOf } from './regions.ts';

export interface CallerIdentity {
  accountId: string;
  partition: string;
  arn: string;
}

const CLIENT_DEFAULTS = { maxAttempts: 8 } as const;

/** Whose credentials these are: the account ID and partition every discovered cluster is keyed by. */
export async function callerIdentity(credentials: AwsCredentialIdentityProvider, region: string): Promise<CallerIdentity> {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const sts = nameEndpointOnError(new STSClient({ region, credentials, ...CLIENT_DEFAULTS }));
  const res = await sts.send(new GetCallerIdentityCommand({}));
  sts.destroy();
  return { accountId: res.Account!, arn: res.Arn!, partition: res.Arn!.split(':')[1] ?? 'aws' };
}

/** The regions enabled for the account ("*" in a matcher), from EC2 DescribeRegions. */
export async function enabledRegions(credentials: AwsCredentialIdentityProvider, region: string): Promise<string[]> {
  const { EC2Client, DescribeRegionsCommand } = await import('@aws-sdk/client-ec2');
  const ec2 = nameEndpointOnError(new EC2Client({ region, credentials, ...CLIENT_DEFAULTS }));
  const res = await ec2.send(new DescribeRegionsCommand({ AllRegions: false }));
  ec2.destroy();
  const partition = partitionOf(region);
  return (res.Regions ?? [])
    .filter((r) => r.OptInStatus !== 'not-opted-in' && partitionOf(r.RegionName!) === partition)
    .map((r) => r.RegionName!)
    .sort();
}
