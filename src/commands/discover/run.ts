import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { testTimeouts } from '../../config/test-timeouts.ts';
import { UsageError, UserError } from '../../core/errors.ts';
import { splitHostPort } from '../../core/host-port.ts';
import { serialize } from '../../core/output.ts';
import { stoppedExitCode } from '../../core/stop.ts';
import type { PollStats } from '../../discovery/engine.ts';
import type { CommandDef, CommandInput } from '../command.ts';
import type { AccessDeniedError, Backend } from '../../backend/backend.ts';
import type { Format } from '../../core/output.ts';
import type { KubernetesServiceConfig } from '../../config/schema.ts';
import type { ServedClusters } from '../../kube/served-clusters.ts';
import type { ServerAddress } from '../../client/server-client.ts';
import type { NetworkAgent } from '../../join/network-identity.ts';
import { hideArgvValue } from '../../core/argv-secret.ts';
import { notATokenAlone } from '../../join/token-text.ts';

export const discoverRun: CommandDef = {
  path: ['discover', 'run'],
  localStore: true,
  summary: 'Run the discovery engine in the foreground: find EKS clusters and keep kube_cluster resources true',
  examples: [
    'kport discover run -c kport.yaml',
    'kport discover run --once --token /tmp/token',
  ],
  options: [
    { flags: '--once', description: 'run one poll and exit: non-zero when a fetch failed, a signal stopped it, or the server stayed unreachable for 30 s' },
    { flags: '--token <file>', description: 'file holding the join token, or - to read it from stdin; a token given itself is hidden from ps once read (default: teleport.join_params.token_name)' },
  ],
  async run(input) {
    const { opts, session } = input;
    const config = await session.config();
    // A Kubernetes agent alone (no discovery) serves through a server, so it needs one.
    const kubeAgent = Boolean(config.kubernetes_service?.enabled && config.teleport.proxy_server);
    if (!config.discovery_service?.enabled && !kubeAgent) {
      throw new UsageError(`discovery_service is not enabled in ${config.source ?? 'the configuration'}: set discovery_service.enabled: yes (or, for a Kubernetes agent, kubernetes_service.enabled: yes and teleport.proxy_server).`);
    }
    if (!config.discovery_service?.enabled && opts.once) throw new UsageError('--once runs one discovery poll, and discovery_service is not enabled: run a Kubernetes agent without --once.');
    const roles = [...(config.discovery_service?.enabled ? ['discovery'] : []), ...(config.kubernetes_service?.enabled ? ['kube'] : [])];
    const tokenSource = String(opts.token ?? config.teleport.join_params?.token_name ?? config.teleport.auth_token ?? '');
    if (typeof opts.token === 'string') hideTokenArgument(opts.token, input.ctx.cwd, (m) => input.ctx.logger.warn(m));
    const { lockDataDir } = await import('../../join/data-dir-lock.ts');
    const unlock = lockDataDir(config.dataDir);
    try {
      return await runLocked(input, roles, tokenSource);
    } finally {
      unlock();
    }
  },
};

/** The agent, once it holds the data dir: join (or resume), then lead or stand by until stopped. */
async function runLocked({ opts, ctx, session }: CommandInput, roles: string[], tokenSource: string): Promise<number | undefined> {
  const config = await session.config();
  const discovery = config.discovery_service?.enabled ? config.discovery_service : undefined;
  // stdin can be read once; the join may ask again (a retry after an outage).
  const fromStdin = tokenSource === '-' ? readToken('-', ctx.cwd, roles) : undefined;
  const token = () => fromStdin ?? readToken(tokenSource, ctx.cwd, roles);
  if (config.teleport.proxy_server) {
    // Network mode: the server is the store; this agent never opens one (docs/architecture.md §9).
    const [{ joinServer }, { parseServerAddress, OutageLog, ServerUnreachable }, { RemoteBackend }] = await Promise.all([
      import('../../join/network-identity.ts'),
      import('../../client/server-client.ts'),
      import('../../client/remote-backend.ts'),
    ]);
    const pins = [config.teleport.ca_pin ?? []].flat();
    // A test's shorter PING interval (to match the server's shorter silent-tunnel limit) and --once patience.
    const { tunnelPingMs: pingMs, onceUnreachableMs = ONCE_UNREACHABLE_MS } = testTimeouts(ctx.env);
    const server = parseServerAddress(config.teleport.proxy_server);
    const once = Boolean(opts.once);
    const fatal = new AbortController();
    let fatalError: Error | undefined;
    const stop = (err: Error) => {
      fatalError ??= err;
      fatal.abort(err);
    };
    // A one-shot run (cron, CI, a oneshot unit) must end: it gives up on a server it cannot reach.
    const outage = new OutageLog((m) => ctx.logger.warn(m), once ? { afterMs: onceUnreachableMs, then: (err) => stop(gaveUp(err, config.teleport.proxy_server!, onceUnreachableMs)) } : undefined);
    const stopping = AbortSignal.any([ctx.signal, fatal.signal]);
    const agent = await joinServer({ dataDir: config.dataDir, server, pins, roles, discoveryGroup: discovery?.discovery_group ?? '', token, signal: stopping, warn: (m) => ctx.logger.warn(m), outage }).catch((err: unknown) => {
      if (fatalError) throw fatalError;
      // Stopped while waiting for an unreachable server: a stop, not a failure.
      if (ctx.signal.aborted) return undefined;
      throw err;
    });
    if (!agent) return stoppedExitCode(ctx.signal, { service: !once });
    const { announceJoin, KubeReadiness } = await import('./announce.ts');
    const { identityDir } = await import('../../join/identity.ts');
    const where = `${server.host}:${server.port}`;
    announceJoin(ctx.logger, { joined: agent.joined, hostId: agent.identity.host_id, roles: agent.identity.roles, server: where, identityDir: identityDir(config.dataDir) });
    const stopRenewing = agent.keepRenewed(stop);
    const removedHint = (err: AccessDeniedError) =>
      Object.assign(err, { message: err.code === 'agent_removed' ? `${err.message}: this agent stops; remove ${config.dataDir}/identity and join again with a new token.` : `The server refused a call of this agent: ${err.message}.` });
    const backend = new RemoteBackend(agent.client, { stopRetrying: stopping, onDenied: removedHint, outage });
    // A Kubernetes agent's reverse tunnel: the server's requests for its clusters arrive on it (docs/architecture.md §9).
    const tunnelStop = new AbortController();
    const kube = config.kubernetes_service?.enabled && !once ? config.kubernetes_service : undefined;
    const served = kube && (await servedClusters({ ctx, kube, backend, hostId: agent.identity.host_id }));
    const ready = kube && new KubeReadiness(ctx.logger, where, agent.identity.host_id);
    const onBeat = ready ? (clusters: string[]) => ready.heartbeat(clusters) : undefined;
    const tunnel = kube && serveOverTunnel({ ctx, dataDir: config.dataDir, server, agent, served: served!, pingMs, signal: AbortSignal.any([stopping, tunnelStop.signal]), onFatal: (err) => stop(err.name === 'AccessDeniedError' ? removedHint(err as AccessDeniedError) : err), onOpen: () => ready!.tunnelOpen() });
    try {
      if (!discovery) return await runKubeService({ ctx, kube: config.kubernetes_service!, backend, hostId: agent.identity.host_id, signal: stopping, served, onBeat });
      return await runDiscovery({ ctx, format: session.format, discovery, kube: config.kubernetes_service, backend, hostId: agent.identity.host_id, once, signal: stopping, served, onBeat });
    } catch (err) {
      // Stopped while a call waited for an unreachable server: a stop, not a failure.
      if (ctx.signal.aborted && !fatalError && err instanceof ServerUnreachable) return stoppedExitCode(ctx.signal, { service: !once });
      throw err;
    } finally {
      stopRenewing();
      tunnelStop.abort();
      await tunnel;
      await backend.close();
      if (fatalError) throw fatalError;
    }
  }
  if (!discovery) throw new UsageError('a Kubernetes agent without discovery_service needs teleport.proxy_server');
  const backend = await session.backend();
  const { joinOrResume } = await import('../../join/identity.ts');
  const { identity, joined } = await joinOrResume({ backend, dataDir: config.dataDir, roles, token, now: ctx.now() });
  const [{ announceJoin }, { identityDir }] = await Promise.all([import('./announce.ts'), import('../../join/identity.ts')]);
  announceJoin(ctx.logger, { joined, hostId: identity.host_id, roles: identity.roles, identityDir: identityDir(config.dataDir) });
  return runDiscovery({ ctx, format: session.format, discovery, kube: config.kubernetes_service, backend, hostId: identity.host_id, once: Boolean(opts.once), signal: ctx.signal });
}

type DiscoveryConfig = NonNullable<Awaited<ReturnType<CommandInput['session']['config']>>['discovery_service']>;

/** One discovery agent on a backend (local, remote, or the server's own): lead or stand by until `signal`. */
export async function runDiscovery(input: DiscoveryRun & { kube?: KubernetesServiceConfig; served?: ServedClusters; onBeat?: (clusters: string[]) => void }): Promise<number | undefined> {
  const { kube, once } = input;
  if (!kube?.enabled || once) return runDiscoveryService(input);
  // The Kubernetes service beside it: its kube_server heartbeat, stopped with the agent; a refusal stops both.
  const { runKubeServerHeartbeat } = await import('../../kube/server-heartbeat.ts');
  const served = input.served ?? (await servedClusters({ ctx: input.ctx, kube, backend: input.backend, hostId: input.hostId }));
  const stop = new AbortController();
  const signal = AbortSignal.any([input.signal, stop.signal]);
  const heartbeat = runKubeServerHeartbeat({ backend: input.backend, hostId: input.hostId, service: kube, signal, now: input.ctx.now, served, onBeat: input.onBeat }).catch((err: unknown) => {
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
async function runKubeService({ ctx, kube, backend, hostId, signal, served, onBeat }: { ctx: CommandInput['ctx']; kube: KubernetesServiceConfig; backend: Backend; hostId: string; signal: AbortSignal; served?: ServedClusters; onBeat?: (clusters: string[]) => void }): Promise<number | undefined> {
  const { runKubeServerHeartbeat } = await import('../../kube/server-heartbeat.ts');
  await runKubeServerHeartbeat({ backend, hostId, service: kube, signal, now: ctx.now, served: served ?? (await servedClusters({ ctx, kube, backend, hostId })), onBeat });
  return stoppedExitCode(ctx.signal, { service: true });
}

/** The clusters this Kubernetes service serves: what its resources select, and its own kubeconfig_file's contexts. */
async function servedClusters({ ctx, kube, backend, hostId }: { ctx: CommandInput['ctx']; kube: KubernetesServiceConfig; backend: Backend; hostId: string }): Promise<ServedClusters> {
  const { servedClustersOf } = await import('../../kube/served-clusters.ts');
  return servedClustersOf({ backend, hostId, service: kube, cwd: ctx.cwd, env: ctx.env, warn: (m) => ctx.logger.warn(m), now: ctx.now });
}

/** The reverse tunnel, its requests served by AgentKubeService for the clusters `served` selects; resolves once it has ended. */
async function serveOverTunnel(input: { ctx: CommandInput['ctx']; dataDir: string; server: ServerAddress; agent: NetworkAgent; served: ServedClusters; pingMs?: number; signal: AbortSignal; onFatal: (err: Error) => void; onOpen: () => void }): Promise<void> {
  const [{ startKubeTunnel }, { AgentKubeService }, { kubeIdentityKey }, { AuditLog }] = await Promise.all([
    import('../../tunnel/kube-agent.ts'),
    import('../../tunnel/agent-service.ts'),
    import('../../join/network-identity.ts'),
    import('../../kube/audit.ts'),
  ]);
  const { ctx, agent, served } = input;
  const audit = new AuditLog(join(input.dataDir, 'audit', 'kube.log'));
  const service = new AgentKubeService({ hostId: agent.identity.host_id, identityKey: kubeIdentityKey(agent.identity), upstream: (cluster) => served.upstream(cluster), audit, warn: (m) => ctx.logger.warn(m) });
  try {
    await startKubeTunnel({ dataDir: input.dataDir, server: input.server, identity: agent.identity, pingMs: input.pingMs, signal: input.signal, warn: (m) => ctx.logger.warn(m), onFatal: input.onFatal, onSession: (session) => service.serve(session), onOpen: input.onOpen });
  } finally {
    await audit.close();
  }
}

interface DiscoveryRun {
  ctx: CommandInput['ctx'];
  format: Format;
  discovery: DiscoveryConfig;
  backend: Backend;
  hostId: string;
  once: boolean;
  signal: AbortSignal;
}

async function runDiscoveryService({ ctx, format, discovery, backend, hostId, once, signal }: DiscoveryRun): Promise<number | undefined> {
  const [{ DiscoveryEngine, sdkAwsApi }, { Heartbeat }, { runAgent }, { GroupLeadership }] = await Promise.all([
    import('../../discovery/engine.ts'),
    import('../../discovery/heartbeat.ts'),
    import('../../discovery/agent.ts'),
    import('../../discovery/leadership.ts'),
  ]);
  const { discoveryReporter } = await import('../../ui/discovery-report.ts');
  const report = await discoveryReporter(ctx, format, discovery.discovery_group);
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
    throw new UserError(`Another agent (host ${leader ?? 'unknown'}) leads discovery group "${discovery.discovery_group}", so --once did not poll: see \`kport get discovery_service\`.`);
  }
  // A poll a signal let finish is still reported; the exit code says the run was stopped.
  ctx.stdout.write(
    format === 'text'
      ? `Discovered ${plural(last.seen, 'EKS cluster')}: ${last.created} created, ${last.updated} updated, ${last.deleted} deleted.\n`
      : serialize({ seen: last.seen, created: last.created, updated: last.updated, deleted: last.deleted, failures: last.failures }, format),
  );
  if (stopped !== undefined) return stopped;
  if (last.failures.length > 0) {
    throw new UserError(`${last.failures.length} fetch${last.failures.length === 1 ? '' : 'es'} failed; their clusters were kept as they were:\n${last.failures.map((f) => `  ${f.scope}: ${f.error}`).join('\n')}`);
  }
  return undefined;
}

/** How long `--once` waits for an unreachable server before it fails (README "Discovery"). */
const ONCE_UNREACHABLE_MS = 30_000;

/** The one sentence a one-shot run ends with when the server stayed unreachable. */
function gaveUp(err: Error, proxyServer: string, afterMs: number): UserError {
  const noPort = splitHostPort(proxyServer)?.port === undefined ? ` (teleport.proxy_server "${proxyServer}" names no port, so 3080, Teleport's default, was tried)` : '';
  return new UserError(`${err.message.replace(/\.$/, '')}${noPort}; --once gave up after ${afterMs / 1000} s: start the server, or correct teleport.proxy_server, and run again.`);
}

/** The contents of the file that holds the token, stdin's for `-`, or the token itself. */
function readToken(value: string, cwd: string, roles: string[]): string {
  const type = `--type=${roles.join(',')}`;
  if (!value) throw new UsageError(`No join token: pass --token FILE (or - for stdin) or set teleport.join_params.token_name (create one with \`kport tokens add ${type}\`).`);
  // Only the token, as `tokens add --format=text` prints it: a file of its other formats is said to be one before anything is sent.
  const alone = (text: string, what: string, file: string) => {
    const problem = notATokenAlone(text);
    if (problem) throw new UsageError(`${what} holds ${problem}: write only the token, with \`(umask 077; kport tokens add ${type} --format=text > ${file})\`.`);
    return text;
  };
  if (value === '-') {
    const text = readFileSync(0, 'utf8').trim();
    if (!text) throw new UsageError(`--token - read no token from stdin: pipe one in, such as \`kport discover run --token - < FILE\`.`);
    return alone(text, 'What --token - read from stdin', 'FILE');
  }
  const path = resolve(cwd, value);
  if (existsSync(path)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`Cannot read the token file ${path}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}.`);
    }
    if (!text) throw new UsageError(`The token file ${path} is empty: write a token into it with \`(umask 077; kport tokens add ${type} --format=text > ${value})\`.`);
    return alone(text, `The token file ${path}`, value);
  }
  if (value.includes('/')) throw new UsageError(`Token file ${value} does not exist: create it with \`(umask 077; kport tokens add ${type} --format=text > ${value})\`.`);
  return value;
}

/** A token given as a value on the command line is hidden from `ps` at once (argv-secret.ts), and the agent says it was seen. */
function hideTokenArgument(value: string, cwd: string, warn: (message: string) => void): void {
  if (value === '-' || existsSync(resolve(cwd, value))) return;
  if (!hideArgvValue('--token', value)) return;
  warn('the join token was given on the command line: kport hid it from the process list now, but other users could see it until then and your shell history keeps it; prefer --token FILE or --token - (stdin).');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
