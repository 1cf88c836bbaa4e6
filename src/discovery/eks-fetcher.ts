import type { EKSClient } from '@aws-sdk/client-eks';
import { classifyAwsError, missingAction } from '../aws/errors.ts';
import { matchLabels, type LabelSelector } from '../resources/labels.ts';
import { mapLimit } from './concurrency.ts';

/** Teleport describes at most 5 clusters at a time; so do we, per region. */
export const DESCRIBE_CONCURRENCY = 5;
const LIVE_STATUSES = new Set(['ACTIVE', 'UPDATING']);

export interface EksCluster {
  name: string;
  arn: string;
  region: string;
  accountId: string;
  status: string;
  tags: Record<string, string>;
}

export class FetchError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FetchError';
  }
}

/** Counts the AWS calls a poll makes, for the benchmark's "calls within 1.1x of the minimum". */
export interface CallCounter {
  count(action: string): void;
}

/**
 * Lists and describes the EKS clusters of one account and region whose tags match. Throttling is
 * retried by the SDK (standard mode: exponential backoff with jitter). A cluster that vanishes
 * between list and describe is skipped; any other failure fails the whole region, so the caller
 * keeps that region's resources instead of reading the failure as "deleted".
 */
export async function fetchEksClusters(
  eks: EKSClient,
  scope: { region: string; accountId: string; tags: LabelSelector },
  counter?: CallCounter,
): Promise<EksCluster[]> {
  const { ListClustersCommand, DescribeClusterCommand } = await import('@aws-sdk/client-eks');
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    counter?.count('eks:ListClusters');
    const page = await call('eks:ListClusters', () => eks.send(new ListClustersCommand({ maxResults: 100, nextToken })));
    names.push(...(page.clusters ?? []));
    nextToken = page.nextToken;
  } while (nextToken);

  const described = await mapLimit(names, DESCRIBE_CONCURRENCY, async (name) => {
    counter?.count('eks:DescribeCluster');
    try {
      return (await eks.send(new DescribeClusterCommand({ name }))).cluster;
    } catch (err) {
      if (classifyAwsError(err).kind === 'not-found') return undefined;
      throw wrap('eks:DescribeCluster', err);
    }
  });
  return described.flatMap((c) => {
    if (!c?.name || !LIVE_STATUSES.has(c.status ?? '')) return [];
    const tags = c.tags ?? {};
    if (!matchLabels(scope.tags, tags)) return [];
    return [{ name: c.name, arn: c.arn ?? '', region: scope.region, accountId: scope.accountId, status: c.status!, tags }];
  });
}

async function call<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wrap(action, err);
  }
}

/** One sentence that names the IAM action when AWS said no. */
export function wrap(action: string, err: unknown): FetchError {
  const failure = classifyAwsError(err);
  switch (failure.kind) {
    case 'access-denied':
      return new FetchError(`AccessDenied: ${missingAction(failure.message) ?? action} is not allowed; grant it (see \`kport discover policy\`)`, {
        cause: err,
      });
    case 'credentials':
      return new FetchError(`AWS rejected the credentials calling ${action}: ${failure.message}`, { cause: err });
    case 'throttled':
      return new FetchError(`${action} was still throttled after retries: ${failure.message}`, { cause: err });
    default:
      return new FetchError(`${action} failed: ${failure.message}`, { cause: err });
  }
}
