import type { EKSClient } from '@aws-sdk/client-eks';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { Backend, Fence } from '../backend/backend.ts';
import type { AwsMatcher } from '../config/schema.ts';
import { errorMessage } from '../core/errors.ts';
import type { FetchFailure } from '../resources/discovery-service.ts';
import type { KubeCluster } from '../resources/kube-cluster.ts';
import { mapLimit } from './concurrency.ts';
import { toKubeCluster } from './convert.ts';
import { FetchError, fetchEksClusters, wrap, type CallCounter } from './eks-fetcher.ts';
import { partitionOf } from '../aws/regions.ts';
import { nameEndpointOnError } from '../aws/endpoint-on-error.ts';
import { reconcile, type ReconcileResult } from './reconcile.ts';

/** Regions scanned at once per matcher and account. */
const REGION_CONCURRENCY = 8;
const REGIONS_TTL_MS = 60 * 60_000;
const PARTITION_HOME: Record<string, string> = { aws: 'us-east-1', 'aws-cn': 'cn-north-1', 'aws-us-gov': 'us-gov-west-1' };

export type DiscoveryEvent =
  | { type: 'poll-start'; at: Date }
  | { type: 'scope'; scope: string; state: 'scanning' | 'done' | 'failed'; clusters?: number; error?: string }
  | { type: 'poll-done'; at: Date; stats: PollStats; changes: { created: string[]; updated: string[]; deleted: string[] } }
  | { type: 'conflict'; name: string };

export interface PollStats {
  durationMs: number;
  seen: number;
  created: number;
  updated: number;
  deleted: number;
  awsCalls: number;
  failures: FetchFailure[];
}

/** The AWS side of discovery, as one seam: the real SDK in production, moto in tests. */
export interface AwsApi {
  credentials(assume: { roleArn: string; externalId?: string } | undefined, region: string): Promise<AwsCredentialIdentityProvider>;
  identity(credentials: AwsCredentialIdentityProvider, region: string): Promise<{ accountId: string; partition: string }>;
  regions(credentials: AwsCredentialIdentityProvider, region: string): Promise<string[]>;
  eks(credentials: AwsCredentialIdentityProvider, region: string): Promise<EKSClient>;
}

export interface EngineOptions {
  backend: Backend;
  discoveryGroup: string;
  matchers: AwsMatcher[];
  /** Region for STS and EC2 calls before the partition is known (AWS_REGION or us-east-1). */
  homeRegion: string;
  aws: AwsApi;
  onEvent?: (event: DiscoveryEvent) => void;
  now?: () => Date;
}

/** One poll: fetch every matcher, account and region; convert; reconcile. */
export class DiscoveryEngine {
  readonly #opts: EngineOptions;
  readonly #credentials = new Map<string, Promise<AwsCredentialIdentityProvider>>();
  readonly #clients = new Map<string, Promise<EKSClient>>();
  readonly #identities = new Map<string, Promise<{ accountId: string; partition: string }>>();
  readonly #regionLists = new Map<string, { at: number; regions: string[] }>();

  constructor(opts: EngineOptions) {
    this.#opts = opts;
  }

  /** One poll; with a fence, its writes stop counting the moment another agent leads. */
  async poll(fence?: Fence): Promise<{ stats: PollStats; changes: ReconcileResult }> {
    const now = this.#opts.now ?? (() => new Date());
    const start = now();
    const emit = this.#opts.onEvent ?? (() => {});
    emit({ type: 'poll-start', at: start });
    let awsCalls = 0;
    const counter: CallCounter = { count: () => void awsCalls++ };
    const failures: FetchFailure[] = [];
    const failedScopes = new Set<string>();
    /** account/region pairs listed successfully this poll: the only places whose absences mean "deleted". */
    const scanned = new Set<string>();
    /** account/region pairs some matcher asks for, known once every matcher has resolved its account. */
    const covered = new Set<string>();
    let unresolved = 0;
    const desired = new Map<string, KubeCluster>();

    const fail = (scope: string, account: string, region: string, err: unknown) => {
      const error = errorMessage(err);
      failures.push({ scope, error, at: now().toISOString() });
      failedScopes.add(`${account}/${region}`);
      emit({ type: 'scope', scope, state: 'failed', error });
    };

    await Promise.all(
      this.#opts.matchers.map(async (matcher, index) => {
        if (!matcher.types.includes('eks')) return;
        unresolved++;
        const assume = matcher.assume_role_arn ? { roleArn: matcher.assume_role_arn, externalId: matcher.external_id } : undefined;
        const roleAccount = matcher.assume_role_arn?.split(':')[4] ?? '*';
        const label = `matcher ${index}`;
        let credentials: AwsCredentialIdentityProvider;
        let account: { accountId: string; partition: string };
        try {
          credentials = await this.#credentialsFor(assume);
          account = await this.#identity(assume, credentials, counter);
        } catch (err) {
          return fail(`${label} / account ${roleAccount}`, roleAccount, '*', err);
        }
        const scopeOf = (region: string) => `${label} / account ${account.accountId} / ${region}`;
        let regions = matcher.regions;
        if (regions.includes('*')) {
          try {
            regions = await this.#regions(account, credentials, counter);
          } catch (err) {
            return fail(scopeOf('*'), account.accountId, '*', err);
          }
        }
        unresolved--;
        for (const region of regions) covered.add(`${account.accountId}/${region}`);
        await mapLimit(regions, REGION_CONCURRENCY, async (region) => {
          emit({ type: 'scope', scope: scopeOf(region), state: 'scanning' });
          try {
            if (partitionOf(region) !== account.partition) {
              throw new FetchError(
                `region ${region} is not in partition ${account.partition} of account ${account.accountId}: list regions of that partition in this matcher`,
              );
            }
            const eks = await this.#eksClient(assume, credentials, region);
            const clusters = await fetchEksClusters(eks, { region, accountId: account.accountId, tags: matcher.tags }, counter);
            for (const c of clusters) {
              const resource = toKubeCluster(c, this.#opts.discoveryGroup);
              desired.set(resource.metadata.name, resource);
            }
            scanned.add(`${account.accountId}/${region}`);
            emit({ type: 'scope', scope: scopeOf(region), state: 'done', clusters: clusters.length });
          } catch (err) {
            fail(scopeOf(region), account.accountId, region, err);
          }
        });
      }),
    );

    const result = await reconcile({
      backend: this.#opts.backend,
      discoveryGroup: this.#opts.discoveryGroup,
      desired: [...desired.values()],
      mayDelete: (accountId, region) => {
        const failed = ['*', accountId].some((a) => failedScopes.has(`${a}/${region}`) || failedScopes.has(`${a}/*`));
        if (failed) return false;
        if (scanned.has(`${accountId}/${region}`)) return true;
        // Not asked for by any matcher any more (the config was narrowed): only a poll in which
        // every matcher reached AWS can tell, so one that failed anywhere deletes nothing here.
        return failures.length === 0 && unresolved === 0 && scanned.size > 0 && !covered.has(`${accountId}/${region}`);
      },
      fence,
    });
    for (const name of result.conflicts) emit({ type: 'conflict', name });
    const stats: PollStats = {
      durationMs: now().getTime() - start.getTime(),
      seen: desired.size,
      created: result.created.length,
      updated: result.updated.length,
      deleted: result.deleted.length,
      awsCalls,
      failures: failures.sort((a, b) => a.scope.localeCompare(b.scope)),
    };
    const sorted = (names: string[]) => [...names].sort();
    emit({
      type: 'poll-done',
      at: now(),
      stats,
      changes: { created: sorted(result.created), updated: sorted(result.updated), deleted: sorted(result.deleted) },
    });
    return { stats, changes: result };
  }

  close(): void {
    for (const client of this.#clients.values())
      void client.then(
        (c) => c.destroy(),
        () => {},
      );
  }

  /** The account behind a set of credentials does not change: asked once. */
  #identity(assume: { roleArn: string } | undefined, credentials: AwsCredentialIdentityProvider, counter: CallCounter) {
    const key = assume?.roleArn ?? 'default';
    let identity = this.#identities.get(key);
    if (!identity) {
      counter.count('sts:GetCallerIdentity');
      identity = this.#opts.aws.identity(credentials, this.#opts.homeRegion).catch((err) => {
        this.#identities.delete(key);
        throw wrap(assume ? 'sts:AssumeRole' : 'sts:GetCallerIdentity', err);
      });
      this.#identities.set(key, identity);
    }
    return identity;
  }

  /** Enabled regions change rarely: asked again after REGIONS_TTL_MS. */
  async #regions(account: { accountId: string; partition: string }, credentials: AwsCredentialIdentityProvider, counter: CallCounter) {
    const cached = this.#regionLists.get(account.accountId);
    const now = Date.now();
    if (cached && cached.at + REGIONS_TTL_MS > now) return cached.regions;
    counter.count('ec2:DescribeRegions');
    const regions = await this.#opts.aws.regions(credentials, PARTITION_HOME[account.partition] ?? this.#opts.homeRegion).catch((err) => {
      throw wrap('ec2:DescribeRegions', err);
    });
    this.#regionLists.set(account.accountId, { at: now, regions });
    return regions;
  }

  #credentialsFor(assume: { roleArn: string; externalId?: string } | undefined): Promise<AwsCredentialIdentityProvider> {
    const key = assume ? `${assume.roleArn}|${assume.externalId ?? ''}` : 'default';
    let creds = this.#credentials.get(key);
    if (!creds) {
      creds = this.#opts.aws.credentials(assume, this.#opts.homeRegion);
      this.#credentials.set(key, creds);
      creds.catch(() => this.#credentials.delete(key));
    }
    return creds;
  }

  #eksClient(assume: { roleArn: string } | undefined, credentials: AwsCredentialIdentityProvider, region: string): Promise<EKSClient> {
    const key = `${assume?.roleArn ?? 'default'}|${region}`;
    let client = this.#clients.get(key);
    if (!client) {
      client = this.#opts.aws.eks(credentials, region);
      this.#clients.set(key, client);
    }
    return client;
  }
}

/** The production AwsApi: the AWS SDK v3 with its default credential chain. */
export async function sdkAwsApi(): Promise<AwsApi> {
  const [{ credentialsFor }, { callerIdentity, enabledRegions }, { EKSClient }] = await Promise.all([
    import('../aws/credentials.ts'),
    import('../aws/account.ts'),
    import('@aws-sdk/client-eks'),
  ]);
  return {
    credentials: credentialsFor,
    identity: callerIdentity,
    regions: enabledRegions,
    eks: async (credentials, region) => nameEndpointOnError(new EKSClient({ region, credentials, maxAttempts: 8 })),
  };
}
