import type { Backend } from '../backend/backend.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { KubernetesServiceConfig } from '../config/schema.ts';
import { UserError } from '../core/errors.ts';
import { stoppedExitCode } from '../core/stop.ts';
import type { DiscoveryEvent, PollStats } from '../discovery/engine.ts';
import type { ServedClusters } from '../kube/served-clusters.ts';
import type { ServiceContext } from './context.ts';

// The discovery agent and the Kubernetes service's heartbeat as processes: on a local store, on
// the server's (in-process), or on a remote one (an agent joined to a server, service/agent.ts).

/** What an agent tells whoever watches it: the engine's events, its leadership, its sleeps, its stop. */
export type AgentEvent =
  | DiscoveryEvent
  | { type: 'sleep'; nextPoll: Date }
  | { type: 'state'; state: 'leader' | 'standby'; leader?: string }
  | { type: 'stopping'; polling?: boolean };

/** How a command shows a discovery agent (ui/discovery-report.ts), given by the command: services do not print. */
export interface DiscoveryReporting {
  open(group: string): Promise<{ event(e: AgentEvent): void; close(): Promise<void> }>;
  /** A --once run polled (a signal may have stopped it since): the command reports the poll. */
  polled(last: PollStats): void;
}

export type DiscoveryConfig = NonNullable<LoadedConfig['discovery_service']>;

export interface DiscoveryRun {
  ctx: ServiceContext;
  reporting: DiscoveryReporting;
  discovery: DiscoveryConfig;
  backend: Backend;
  hostId: string;
  once: boolean;
  signal: AbortSignal;
}

/** One discovery agent on a backend (local, remote, or the server's own): lead or stand by until `signal`. */
export async function runDiscovery(
  input: DiscoveryRun & { kube?: KubernetesServiceConfig; served?: ServedClusters; onBeat?: (clusters: string[]) => void },
): Promise<number | undefined> {
  const { kube, once } = input;
  if (!kube?.enabled || once) return runDiscoveryService(input);
  // The Kubernetes service beside it: its kube_server heartbeat, stopped with the agent; a refusal stops both.
  const { runKubeServerHeartbeat } = await import('../kube/server-heartbeat.ts');
  const served = input.served ?? (await servedClusters({ ctx: input.ctx, kube, backend: input.backend, hostId: input.hostId }));
  const stop = new AbortController();
  const signal = AbortSignal.any([input.signal, stop.signal]);
  const heartbeat = runKubeServerHeartbeat({
    backend: input.backend,
    hostId: input.hostId,
    service: kube,
    signal,
    now: input.ctx.now,
    served,
    onBeat: input.onBeat,
  }).catch((err: unknown) => {
    stop.abort(err);
    throw err;
  });
  try {
    return await runDiscoveryService({ ...input, signal });
  } finally {
    stop.abort();
    await heartbeat;
  }
}

/** A Kubernetes agent without discovery: its kube_server heartbeat until stopped (the tunnel runs beside it). */
export async function runKubeService({
  ctx,
  kube,
  backend,
  hostId,
  signal,
  served,
  onBeat,
}: {
  ctx: ServiceContext;
  kube: KubernetesServiceConfig;
  backend: Backend;
  hostId: string;
  signal: AbortSignal;
  served?: ServedClusters;
  onBeat?: (clusters: string[]) => void;
}): Promise<number | undefined> {
  const { runKubeServerHeartbeat } = await import('../kube/server-heartbeat.ts');
  await runKubeServerHeartbeat({
    backend,
    hostId,
    service: kube,
    signal,
    now: ctx.now,
    served: served ?? (await servedClusters({ ctx, kube, backend, hostId })),
    onBeat,
  });
  return stoppedExitCode(ctx.signal, { service: true });
}

/** The clusters this Kubernetes service serves: what its resources select, and its own kubeconfig_file's contexts. */
export async function servedClusters({
  ctx,
  kube,
  backend,
  hostId,
}: {
  ctx: ServiceContext;
  kube: KubernetesServiceConfig;
  backend: Backend;
  hostId: string;
}): Promise<ServedClusters> {
  const { servedClustersOf } = await import('../kube/served-clusters.ts');
  return servedClustersOf({ backend, hostId, service: kube, cwd: ctx.cwd, env: ctx.env, warn: (m) => ctx.logger.warn(m), now: ctx.now });
}

async function runDiscoveryService({ ctx, reporting, discovery, backend, hostId, once, signal }: DiscoveryRun): Promise<number | undefined> {
  const [{ DiscoveryEngine, sdkAwsApi }, { Heartbeat }, { runAgent }, { GroupLeadership }] = await Promise.all([
    import('../discovery/engine.ts'),
    import('../discovery/heartbeat.ts'),
    import('../discovery/agent.ts'),
    import('../discovery/leadership.ts'),
  ]);
  const report = await reporting.open(discovery.discovery_group);
  let polling = false;
  // Ctrl-C waits for the poll in flight to finish its writes: say so, so the wait is not silent.
  ctx.signal.addEventListener('abort', () => report.event({ type: 'stopping', polling }), { once: true });
  const onEvent = report.event;
  report.event = (e) => {
    if (e.type === 'poll-start') polling = true;
    if (e.type === 'poll-done') polling = false;
    onEvent(e);
  };
  const engine = new DiscoveryEngine({
    backend,
    discoveryGroup: discovery.discovery_group,
    matchers: discovery.aws,
    homeRegion: ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION || 'us-east-1',
    aws: await sdkAwsApi(),
    onEvent: report.event,
    now: ctx.now,
  });
  const heartbeat = new Heartbeat(backend, {
    hostId,
    discoveryGroup: discovery.discovery_group,
    ttlMs: 2 * discovery.poll_interval + 60_000,
    intervalMs: Math.max(1000, discovery.poll_interval / 2),
    now: ctx.now,
  });
  let last: PollStats | undefined;
  let leader: string | undefined;
  try {
    last = await runAgent({
      engine,
      heartbeat,
      leadership: new GroupLeadership(backend, { group: discovery.discovery_group, hostId, ttlMs: discovery.leader_lease_ttl }),
      onState: (state, current) => {
        leader = current;
        report.event({ type: 'state', state, leader: current });
      },
      pollIntervalMs: discovery.poll_interval,
      once,
      signal,
      now: ctx.now,
      onSleep: (nextPoll) => report.event({ type: 'sleep', nextPoll }),
    });
  } finally {
    engine.close();
    await report.close();
  }
  const stopped = ctx.signal.aborted ? stoppedExitCode(ctx.signal, { service: !once }) : undefined;
  if (!once) return stopped;
  if (!last) {
    if (stopped !== undefined) return stopped;
    throw new UserError(
      `Another agent (host ${leader ?? 'unknown'}) leads discovery group "${discovery.discovery_group}", so --once did not poll: see \`kport get discovery_service\`.`,
    );
  }
  // A poll a signal let finish is still reported; the exit code says the run was stopped.
  reporting.polled(last);
  if (stopped !== undefined) return stopped;
  if (last.failures.length > 0) {
    throw new UserError(
      `${last.failures.length} fetch${last.failures.length === 1 ? '' : 'es'} failed; their clusters were kept as they were:\n${last.failures.map((f) => `  ${f.scope}: ${f.error}`).join('\n')}`,
    );
  }
  return undefined;
}
