import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import { DEFAULT_LISTEN_ADDR, dialSetting, listenSetting } from '../config/listen.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { OidcAuthentication } from '../config/schema.ts';
import type { ServerMetrics } from '../server/diag/metrics.ts';
import { testTimeouts } from '../config/test-timeouts.ts';
import { parseDuration } from '../core/duration.ts';
import { UsageError, UserError } from '../core/errors.ts';
import { checkDataDir } from '../core/file-trust.ts';
import { splitHostPort } from '../core/host-port.ts';
import { writeSecretFile } from '../core/secret-file.ts';
import type { ServiceContext } from './context.ts';
import { runDiscovery, type DiscoveryReporting } from './discovery.ts';

// The kport server as one process (Teleport's lib/service): the store's CAs, the TLS listener, the
// session recorder and audit, and, when the config enables them, the discovery and Kubernetes
// services in-process on the server's own store. `kport server start` parses, calls and reports.

/** `host:port`, `:port` or `[v6]:port` as Teleport's listen addresses are written. */
function parseListenAddr(value: string, key: string): { host: string; port: number } {
  const parts = splitHostPort(value);
  if (parts?.port === undefined) throw new UsageError(`${key} "${value}" is not host:port, such as ${DEFAULT_LISTEN_ADDR}.`);
  return { host: parts.host || '0.0.0.0', port: parts.port };
}

export interface ServerStart {
  config: LoadedConfig;
  /** The store, opened once the data dir and the seal key passed their checks. */
  backend: () => Promise<Backend>;
  ctx: ServiceContext;
  /** The server's log lines (audit failures, recordings, refusals), one JSON text each. */
  log: (line: string) => void;
  /** How the in-process discovery service reports, when it runs. */
  discovery: DiscoveryReporting;
  /** `--diag-addr`: the diagnostics address, in place of teleport.diag_addr. */
  diagAddr?: string;
}

/** A server listening; `run` starts its in-process services and returns once the signal stopped everything. */
export interface StartedServer {
  url: string;
  pin: string;
  /** Whether the CAs were made by this start. */
  created: boolean;
  /** The first editor's invite, when nobody can log in yet. */
  first?: { user: string; roles: string[]; invite: string; expires: string };
  /** The host and port a person's login names: the first public_addr's (a load balancer's), else the listen host and bound port. */
  loginHost: string;
  port: number;
  sealKeyPath: string;
  /** The diagnostics' URL (http://host:port), when teleport.diag_addr or --diag-addr sets one. */
  diag?: string;
  run(): Promise<void>;
}

/** Checks the config, listens, and makes the first editor's invite when none can log in. */
export async function startServer({ config, backend: openBackend, ctx, log, discovery, diagAddr }: ServerStart): Promise<StartedServer> {
  const where = config.source ?? 'the configuration';
  if (!config.source) {
    // Nothing to "set in": say which file to create, with the keys, and how to name it.
    throw new UsageError(
      `kport server start needs a config file, and none was found (searched ${ctx.cwd} upwards and /etc/kport.yaml): create kport.yaml with the lines "auth_service: { enabled: yes }" and "proxy_service: { enabled: yes }" (see README "Network mode"), then run \`kport server start -c kport.yaml\`.`,
    );
  }
  if (!config.auth_service?.enabled || !config.proxy_service?.enabled) {
    throw new UsageError(`kport server start runs the auth and proxy services: set auth_service.enabled: yes and proxy_service.enabled: yes in ${where}.`);
  }
  if (config.teleport.proxy_server) throw new UsageError(`${where} sets teleport.proxy_server, which is for agents joining a server: a server leaves it out.`);
  const proxy = config.proxy_service;
  const { key: listenKey, value: listenValue } = listenSetting(proxy);
  const listen = parseListenAddr(listenValue, listenKey);
  const publicNames = [proxy.public_addr ?? []].flat().flatMap((a) => splitHostPort(a)?.host || []);
  const diagKey = diagAddr !== undefined ? '--diag-addr' : 'teleport.diag_addr';
  const diagSetting = diagAddr ?? config.teleport.diag_addr;
  // Parsed before anything opens, so a typo is refused at once; loopback unless the address names a host.
  const diagListen =
    diagSetting === undefined ? undefined : { ...parseListenAddr(diagSetting, diagKey), host: splitHostPort(diagSetting)?.host || '127.0.0.1' };
  // Shorter waits for a test (tunnelPingMs is the agents' own, read by discover run).
  const { tunnelPingMs: _agents, ...timeouts } = testTimeouts(ctx.env);

  // The data dir and the seal key are checked (whose, who can write or read them) before the store
  // opens: another user who made them first would hold the key to every CA. loadAuthorities reads it again.
  checkDataDir(config.dataDir);
  const sealKeyPath = join(config.dataDir, 'server', 'seal.key');
  (await import('../pki/seal.ts')).readSealKey(sealKeyPath);
  const backend = await openBackend();
  const [{ loadAuthorities }, { ServerAudit }, { KportServer }] = await Promise.all([
    import('../server/auth/authorities.ts'),
    import('../server/events/audit.ts'),
    import('../server/api/server.ts'),
  ]);
  const { authorities, created, seal } = await loadAuthorities(backend, config.dataDir);
  const audit = new ServerAudit(backend, { retentionMs: config.auth_service.audit_retention, log, now: ctx.now });
  const rate = config.auth_service.join_rate_limit;
  const joinRate = rate && { periodMs: rate.period, average: rate.average, burst: rate.burst };
  const dial = dialAddress(proxy, listen);
  const oidc = await oidcLogin(config.auth_service.authentication, dial, ctx.now, { backend, sealKey: seal });
  const people = { sealKey: seal, configRoles: config.roles, ...(oidc && { oidc }) };
  const [{ SessionRecorder }, { openSink }, { recordingHooks }] = await Promise.all([
    import('../server/events/recording/recorder.ts'),
    import('../server/events/recording/sinks.ts'),
    import('../server/kubeproxy/recording-hooks.ts'),
  ]);
  const recorder = new SessionRecorder({ sink: await openSink(config.auth_service, config.dataDir, log), audit, log, now: ctx.now });
  // How long a connection with nothing open on it may be silent (README "Network mode"); tests shorten it.
  const idle = ctx.env.KPORT_IDLE_TIMEOUT;
  const idleTimeoutMs = idle ? parseDuration(idle, 'KPORT_IDLE_TIMEOUT') : undefined;
  const hostId = serverHostId(config.dataDir);
  const peer = peerListen(config, listen.host);
  const metrics = diagListen && new (await import('../server/diag/metrics.ts')).ServerMetrics();
  const server = new KportServer({
    ...(metrics && { metrics }),
    ...(idleTimeoutMs && { idleTimeoutMs }),
    recorder,
    kubeUpgrades: recordingHooks(recorder),
    backend,
    authorities,
    audit,
    host: listen.host,
    port: listen.port,
    publicNames,
    hostCertTtlMs: config.auth_service.host_cert_ttl,
    log,
    now: ctx.now,
    ...(joinRate && { joinRate }),
    people,
    hostId,
    timeouts,
    ...(peer && { peer }),
    proxyProtocol: proxy.proxy_protocol,
  });
  const address = await server.listen().catch(async (err: NodeJS.ErrnoException) => {
    // Its watches (agents, clusters, heartbeats) would keep the process alive after the error.
    await server.close();
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
      const why = {
        EADDRINUSE: 'the port is already in use (another server?)',
        EACCES: 'permission denied (ports below 1024 need privileges)',
        EADDRNOTAVAIL: 'no such local address',
      }[err.code];
      throw new UserError(`Cannot listen on ${listen.host}:${listen.port} (${listenKey}): ${why}; stop what holds it or set another ${listenKey}.`);
    }
    throw err;
  });
  const url = `https://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  if (server.peerAddress) log(JSON.stringify({ level: 'info', msg: `proxy peering: other servers reach this one (${hostId}) at ${server.peerAddress}` }));
  const diag = diagListen && metrics && (await listenDiag(diagListen, diagKey, { backend, server, metrics }));
  const first = await (await import('../people/first-user.ts')).firstUserInvite(backend, ctx.now(), config.roles);
  if (first)
    await audit.record({ type: 'user.invite', outcome: 'allowed', user: first.user, roles: first.roles, action: 'first editor invite at server start' });

  const run = async () => {
    // With discovery or kubernetes_service enabled the server runs them in-process on its own store, as Teleport's guide does.
    const running: Promise<unknown>[] = [];
    if (config.discovery_service?.enabled) {
      // Without `kube`: the server's Kubernetes service runs below, on its loopback tunnel.
      running.push(
        runDiscovery({ ctx, reporting: discovery, discovery: config.discovery_service, backend, hostId, once: false, signal: ctx.signal }).catch((err) => {
          ctx.logger.error(`the in-process discovery service stopped: ${(err as Error).message}`);
        }),
      );
    }
    if (config.kubernetes_service?.enabled) {
      const { runInProcessKubeService } = await import('../server/kubeproxy/kube-service.ts');
      running.push(
        runInProcessKubeService({
          backend,
          tunnels: server.tunnels,
          authorities,
          hostId,
          service: config.kubernetes_service,
          cwd: ctx.cwd,
          env: ctx.env,
          warn: (m) => ctx.logger.warn(m),
          signal: ctx.signal,
          now: ctx.now,
        }).catch((err) => {
          ctx.logger.error(`the in-process kubernetes service stopped: ${(err as Error).message}`);
        }),
      );
    }
    const services = Promise.all(running);
    await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener('abort', () => resolve(), { once: true })));
    // SIGTERM (a service manager's, a rolling restart's) drains: open requests get shutdown_grace and
    // agents redial elsewhere first. Ctrl-C and SIGHUP stop at once, as before. A second signal exits now (bin/launch.js).
    const sigterm = (ctx.signal.reason as Error | undefined)?.message === 'SIGTERM';
    await Promise.all([sigterm ? server.drain(config.teleport.shutdown_grace) : server.close(), services]);
    // Sessions still open store their recordings (or give them up) and write session.end.
    await recorder.close();
    // Request events still waiting for their batch go to the store before it closes.
    await audit.drain();
    await diag?.server.close();
  };
  return {
    url,
    pin: authorities.pin,
    created,
    ...(first && { first }),
    ...dialAddress(proxy, { host: listen.host, port: address.port }),
    sealKeyPath,
    ...(diag && { diag: diag.url }),
    run,
  };
}

/** The diagnostics listener (server/diag/): readiness from the store, the server's caches and its draining. */
async function listenDiag(
  listen: { host: string; port: number },
  key: string,
  { backend, server, metrics }: { backend: Backend; server: { loaded: boolean; draining: boolean; close(): Promise<void> }; metrics: ServerMetrics },
) {
  const [{ DiagServer }, { Readiness }] = await Promise.all([import('../server/diag/diag-server.ts'), import('../server/diag/readiness.ts')]);
  const readiness = new Readiness({ read: (k) => backend.get(k), loaded: () => server.loaded, draining: () => server.draining });
  const diag = new DiagServer({ host: listen.host, port: listen.port, readiness, metrics });
  const address = await diag.listen().catch(async (err: NodeJS.ErrnoException) => {
    await server.close();
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL')
      throw new UserError(
        `Cannot listen on ${listen.host}:${listen.port} (${key}) for diagnostics: ${err.code === 'EADDRINUSE' ? 'the port is already in use' : err.code === 'EACCES' ? 'permission denied' : 'no such local address'}; stop what holds it or set another ${key}.`,
      );
    throw err;
  });
  return { server: diag, url: `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}` };
}

/**
 * Where people dial the server, for the invite line and OIDC's callback: the first public_addr's host
 * and port (dialSetting, as `tokens add` prints it), its port defaulting to the listen one, else the
 * listen host and port.
 */
function dialAddress(proxy: NonNullable<LoadedConfig['proxy_service']>, listen: { host: string; port: number }): { loginHost: string; port: number } {
  const dial = dialSetting(proxy);
  const given = dial.key === 'proxy_service.public_addr' ? splitHostPort(dial.value) : undefined;
  return { loginHost: given?.host || listen.host, port: given?.port ?? listen.port };
}

/** The OIDC relying party when auth_service.authentication.type is oidc; its callback at the server's public address. */
async function oidcLogin(settings: { type: string }, dial: { loginHost: string; port: number }, now: () => Date, store: { backend: Backend; sealKey: Buffer }) {
  if (settings.type !== 'oidc') return undefined;
  const { OidcLogin } = await import('../server/auth/oidc.ts');
  const { OIDC_CALLBACK_PATH } = await import('../server/auth/oidc-routes.ts');
  const host = dial.loginHost === '0.0.0.0' ? 'localhost' : dial.loginHost;
  return OidcLogin.create(settings as OidcAuthentication, {
    callbackUrl: `https://${host.includes(':') ? `[${host}]` : host}:${dial.port}${OIDC_CALLBACK_PATH}`,
    now,
    store,
  });
}

/**
 * Proxy peering's listener, on etcd storage only (several servers share one store only there):
 * proxy_service.peer_listen_addr, by default the listen host on any free port, advertised as
 * proxy_service.peer_public_addr or the address it bound.
 */
function peerListen(config: LoadedConfig, listenHost: string): { host: string; port: number; publicAddr?: string } | undefined {
  const proxy = config.proxy_service;
  if (config.teleport.storage.type !== 'etcd') {
    const set = (['peer_listen_addr', 'peer_public_addr'] as const).find((key) => proxy?.[key] !== undefined);
    if (set)
      throw new UsageError(
        `proxy_service.${set} is for several servers sharing one etcd store, and this server's storage is ${config.teleport.storage.type}: remove it, or set teleport.storage to etcd (README "Several servers").`,
      );
    return undefined;
  }
  const listen = proxy?.peer_listen_addr ? parseListenAddr(proxy.peer_listen_addr, 'proxy_service.peer_listen_addr') : { host: listenHost, port: 0 };
  const publicAddr = proxy?.peer_public_addr;
  if (publicAddr !== undefined && splitHostPort(publicAddr)?.port === undefined)
    throw new UsageError(`proxy_service.peer_public_addr "${publicAddr}" is not host:port, such as server-b.internal:3081.`);
  return { ...listen, ...(publicAddr && { publicAddr }) };
}

/** The server's own host id, for the services it runs in-process; kept in `<data_dir>/server/host_id`. */
function serverHostId(dataDir: string): string {
  const path = join(dataDir, 'server', 'host_id');
  try {
    const kept = readFileSync(path, 'utf8').trim();
    if (kept) return kept;
  } catch {}
  const id = randomUUID();
  writeSecretFile(path, `${id}\n`);
  return id;
}
