import { join } from 'node:path';
import type { AccessDeniedError, Backend } from '../backend/backend.ts';
import type { ServerAddress } from '../client/server-client.ts';
import type { LoadedConfig } from '../config/load.ts';
import { testTimeouts } from '../config/test-timeouts.ts';
import { UsageError, UserError } from '../core/errors.ts';
import { splitHostPort } from '../core/host-port.ts';
import { stoppedExitCode } from '../core/stop.ts';
import type { NetworkAgent } from '../join/network-identity.ts';
import type { ServedClusters } from '../kube/served-clusters.ts';
import type { ServiceContext } from './context.ts';
import { runDiscovery, runKubeService, servedClusters, type DiscoveryReporting } from './discovery.ts';

// An agent as one process (`kport discover run`): it joins (or resumes), then runs discovery, the
// Kubernetes service's heartbeat and its reverse tunnel, on the local store or through the server
// (docs/architecture.md §9), until stopped. The command reads the token and reports.

export interface AgentRun {
  config: LoadedConfig;
  ctx: ServiceContext;
  /** The roles it joins with: discovery, kube. */
  roles: string[];
  /** The join token, read when the join needs it. */
  token: () => string;
  /** --once: one discovery poll, then exit. */
  once: boolean;
  reporting: DiscoveryReporting;
  /** The local store (not in network mode). */
  backend: () => Promise<Backend>;
}

/** The agent, once it holds the data dir: join (or resume), then lead or stand by until stopped. */
export async function runAgentProcess({ config, ctx, roles, token, once, reporting, backend: openBackend }: AgentRun): Promise<number | undefined> {
  const discovery = config.discovery_service?.enabled ? config.discovery_service : undefined;
  if (config.teleport.proxy_server) {
    // Network mode: the server is the store; this agent never opens one (docs/architecture.md §9).
    const [{ joinServer }, { parseServerAddress, OutageLog, ServerUnreachable }, { RemoteBackend }] = await Promise.all([
      import('../join/network-identity.ts'),
      import('../client/server-client.ts'),
      import('../client/remote-backend.ts'),
    ]);
    const pins = [config.teleport.ca_pin ?? []].flat();
    // A test's shorter PING interval (to match the server's shorter silent-tunnel limit) and --once patience.
    const { tunnelPingMs: pingMs, onceUnreachableMs = ONCE_UNREACHABLE_MS } = testTimeouts(ctx.env);
    const server = parseServerAddress(config.teleport.proxy_server);
    const fatal = new AbortController();
    let fatalError: Error | undefined;
    const stop = (err: Error) => {
      fatalError ??= err;
      fatal.abort(err);
    };
    // A one-shot run (cron, CI, a oneshot unit) must end: it gives up on a server it cannot reach.
    const outage = new OutageLog(
      (m) => ctx.logger.warn(m),
      once ? { afterMs: onceUnreachableMs, onGiveUp: (err) => stop(gaveUp(err, config.teleport.proxy_server!, onceUnreachableMs)) } : undefined,
    );
    const stopping = AbortSignal.any([ctx.signal, fatal.signal]);
    const agent = await joinServer({
      dataDir: config.dataDir,
      server,
      pins,
      roles,
      discoveryGroup: discovery?.discovery_group ?? '',
      token,
      signal: stopping,
      warn: (m) => ctx.logger.warn(m),
      outage,
    }).catch((err: unknown) => {
      if (fatalError) throw fatalError;
      // Stopped while waiting for an unreachable server: a stop, not a failure.
      if (ctx.signal.aborted) return undefined;
      throw err;
    });
    if (!agent) return stoppedExitCode(ctx.signal, { service: !once });
    const { announceJoin, KubeReadiness } = await import('./announce.ts');
    const { identityDir } = await import('../join/identity.ts');
    const where = `${server.host}:${server.port}`;
    announceJoin(ctx.logger, {
      joined: agent.joined,
      hostId: agent.identity.host_id,
      roles: agent.identity.roles,
      server: where,
      identityDir: identityDir(config.dataDir),
    });
    const stopRenewing = agent.keepRenewed(stop);
    const removedHint = (err: AccessDeniedError) =>
      Object.assign(err, {
        message:
          err.code === 'agent_removed'
            ? `${err.message}: this agent stops; remove ${config.dataDir}/identity and join again with a new token.`
            : `The server refused a call of this agent: ${err.message}.`,
      });
    const backend = new RemoteBackend(agent.client, { stopRetrying: stopping, onDenied: removedHint, outage });
    // A Kubernetes agent's reverse tunnel: the server's requests for its clusters arrive on it (docs/architecture.md §9).
    const tunnelStop = new AbortController();
    const kube = config.kubernetes_service?.enabled && !once ? config.kubernetes_service : undefined;
    const served = kube && (await servedClusters({ ctx, kube, backend, hostId: agent.identity.host_id }));
    const ready = kube && new KubeReadiness(ctx.logger, where, agent.identity.host_id);
    const onBeat = ready ? (clusters: string[]) => ready.heartbeat(clusters) : undefined;
    const tunnel =
      kube &&
      serveOverTunnel({
        ctx,
        dataDir: config.dataDir,
        server,
        agent,
        served: served!,
        pingMs,
        signal: AbortSignal.any([stopping, tunnelStop.signal]),
        onFatal: (err) => stop(err.name === 'AccessDeniedError' ? removedHint(err as AccessDeniedError) : err),
        onOpen: () => ready!.tunnelOpen(),
      });
    try {
      if (!discovery)
        return await runKubeService({ ctx, kube: config.kubernetes_service!, backend, hostId: agent.identity.host_id, signal: stopping, served, onBeat });
      return await runDiscovery({
        ctx,
        reporting,
        discovery,
        kube: config.kubernetes_service,
        backend,
        hostId: agent.identity.host_id,
        once,
        signal: stopping,
        served,
        onBeat,
      });
    } catch (err) {
      // Stopped while a call waited for an unreachable server: a stop, not a failure.
      if (ctx.signal.aborted && !fatalError && err instanceof ServerUnreachable) return stoppedExitCode(ctx.signal, { service: !once });
      throw err;
    } finally {
      stopRenewing();
      tunnelStop.abort();
      await tunnel;
      await backend.close();
      // biome-ignore lint/correctness/noUnsafeFinally: a fatal error met while stopping outranks how the run itself ended.
      if (fatalError) throw fatalError;
    }
  }
  if (!discovery) throw new UsageError('a Kubernetes agent without discovery_service needs teleport.proxy_server');
  const backend = await openBackend();
  const { joinOrResume } = await import('../join/identity.ts');
  const { identity, joined } = await joinOrResume({ backend, dataDir: config.dataDir, roles, token, now: ctx.now() });
  const [{ announceJoin }, { identityDir }] = await Promise.all([import('./announce.ts'), import('../join/identity.ts')]);
  announceJoin(ctx.logger, { joined, hostId: identity.host_id, roles: identity.roles, identityDir: identityDir(config.dataDir) });
  return runDiscovery({ ctx, reporting, discovery, kube: config.kubernetes_service, backend, hostId: identity.host_id, once, signal: ctx.signal });
}

/** The reverse tunnel, its requests served by AgentKubeService for the clusters `served` selects; resolves once it has ended. */
async function serveOverTunnel(input: {
  ctx: ServiceContext;
  dataDir: string;
  server: ServerAddress;
  agent: NetworkAgent;
  served: ServedClusters;
  pingMs?: number;
  signal: AbortSignal;
  onFatal: (err: Error) => void;
  onOpen: () => void;
}): Promise<void> {
  const [{ startKubeTunnel }, { AgentKubeService }, { kubeIdentityKey }, { AuditLog }] = await Promise.all([
    import('../reversetunnel/kube-agent.ts'),
    import('../reversetunnel/agent-service.ts'),
    import('../join/network-identity.ts'),
    import('../kube/audit.ts'),
  ]);
  const { ctx, agent, served } = input;
  const audit = new AuditLog(join(input.dataDir, 'audit', 'kube.log'));
  const service = new AgentKubeService({
    hostId: agent.identity.host_id,
    identityKey: kubeIdentityKey(agent.identity),
    upstream: (cluster) => served.upstream(cluster),
    audit,
    warn: (m) => ctx.logger.warn(m),
  });
  try {
    await startKubeTunnel({
      dataDir: input.dataDir,
      server: input.server,
      identity: agent.identity,
      pingMs: input.pingMs,
      signal: input.signal,
      warn: (m) => ctx.logger.warn(m),
      onFatal: input.onFatal,
      onSession: (session) => service.serve(session),
      onOpen: input.onOpen,
    });
  } finally {
    await audit.close();
  }
}

/** How long `--once` waits for an unreachable server before it fails (README "Discovery"). */
const ONCE_UNREACHABLE_MS = 30_000;

/** The one sentence a one-shot run ends with when the server stayed unreachable. */
function gaveUp(err: Error, proxyServer: string, afterMs: number): UserError {
  const noPort =
    splitHostPort(proxyServer)?.port === undefined ? ` (teleport.proxy_server "${proxyServer}" names no port, so 3080, Teleport's default, was tried)` : '';
  return new UserError(
    `${err.message.replace(/\.$/, '')}${noPort}; --once gave up after ${afterMs / 1000} s: start the server, or correct teleport.proxy_server, and run again.`,
  );
}
