import type { AwsMatcher } from '../config/schema.ts';

export interface IamPolicy {
  Version: '2012-10-17';
  Statement: Array<{ Sid: string; Effect: 'Allow'; Action: string[]; Resource: string | string[] }>;
}

function discoveryActions(matchers: AwsMatcher[]): string[] {
  const actions = ['eks:DescribeCluster', 'eks:ListClusters'];
  if (matchers.some((m) => m.regions.includes('*'))) actions.push('ec2:DescribeRegions');
  return actions;
}

/**
 * The least the agent's own identity needs for these matchers: EKS reads (and DescribeRegions
 * for "*") where it discovers with its own credentials, and sts:AssumeRole on each role.
 */
export function agentPolicy(matchers: AwsMatcher[]): IamPolicy {
  const eks = matchers.filter((m) => m.types.includes('eks'));
  const own = eks.filter((m) => !m.assume_role_arn);
  const roles = [...new Set(eks.flatMap((m) => m.assume_role_arn ?? []))].sort();
  const statements: IamPolicy['Statement'] = [];
  if (own.length > 0) statements.push({ Sid: 'KportEKSDiscovery', Effect: 'Allow', Action: discoveryActions(own), Resource: '*' });
  if (roles.length > 0) statements.push({ Sid: 'KportAssumeDiscoveryRoles', Effect: 'Allow', Action: ['sts:AssumeRole'], Resource: roles });
  return { Version: '2012-10-17', Statement: statements };
}

/** What an assumed role itself needs, for the matchers that use it. */
export function rolePolicy(matchers: AwsMatcher[], roleArn: string): IamPolicy | undefined {
  const using = matchers.filter((m) => m.types.includes('eks') && m.assume_role_arn === roleArn);
  if (using.length === 0) return undefined;
  return { Version: '2012-10-17', Statement: [{ Sid: 'KportEKSDiscovery', Effect: 'Allow', Action: discoveryActions(using), Resource: '*' }] };
}
