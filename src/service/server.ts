import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.ts';
import { DEFAULT_LISTEN_ADDR, listenSetting } from '../config/listen.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { OidcAuthentication } from '../config/schema.ts';
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
}

/** A server listening; `run` starts its in-process services and returns once the signal stopped everything. */
export interface StartedServer {
  url: string;
  pin: string;
  /** Whether the CAs were made by this start. */
  created: boolean;
  /** The first editor's invite, when nobody can log in yet. */
  first?: { user: string; roles: string[]; invite: string; expires: string };
  /** The host a person's login names: the first public name, else the listen host. */
  loginHost: string;
  port: number;
  sealKeyPath: string;
  run(): Promise<void>;
}

/** Checks the config, listens, and makes the first editor's invite when none can log in. */
export async function startServer({ config, backend: openBackend, ctx, log, discovery }: ServerStart): Promise<StartedServer> {
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
  const oidc = await oidcLogin(config.auth_service.authentication, listen, publicNames, ctx.now, { backend, sealKey: seal });
  const people = { sealKey: seal, configRoles: config.roles, ...(oidc && { oidc }) };
  const [{ SessionRecorder }, { recordingsDir }, { recordingHooks }, { budgetLimits }] = await Promise.all([
    import('../server/events/recording/recorder.ts'),
    import('../recordings/store.ts'),
    import('../server/kubeproxy/recording-hooks.ts'),
    import('../server/events/recording/budget.ts'),
  ]);
  const recorder = new SessionRecorder({
    dir: recordingsDir(config.dataDir),
    audit,
    log,
    now: ctx.now,
    budget: budgetLimits(config.auth_service.recording_budget),
  });
  // How long a connection with nothing open on it may be silent (README "Network mode"); tests shorten it.
  const idle = ctx.env.KPORT_IDLE_TIMEOUT;
  const idleTimeoutMs = idle ? parseDuration(idle, 'KPORT_IDLE_TIMEOUT') : undefined;
  const hostId = serverHostId(config.dataDir);
  const server = new KportServer({
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
    await Promise.all([server.close(), services]);
    // Request events still waiting for their batch go to the store before it closes.
    await audit.drain();
  };
  return { url, pin: authorities.pin, created, ...(first && { first }), loginHost: publicNames[0] ?? listen.host, port: address.port, sealKeyPath, run };
}

/** The OIDC relying party when auth_service.authentication.type is oidc; its callback at the server's public address. */
async function oidcLogin(
  settings: { type: string },
  listen: { host: string; port: number },
  publicNames: string[],
  now: () => Date,
  store: { backend: Backend; sealKey: Buffer },
) {
  if (settings.type !== 'oidc') return undefined;
  const { OidcLogin } = await import('../server/auth/oidc.ts');
  const { OIDC_CALLBACK_PATH } = await import('../server/auth/oidc-routes.ts');
  const host = publicNames[0] ?? (listen.host === '0.0.0.0' ? 'localhost' : listen.host);
  return OidcLogin.create(settings as OidcAuthentication, {
    callbackUrl: `https://${host.includes(':') ? `[${host}]` : host}:${listen.port}${OIDC_CALLBACK_PATH}`,
    now,
    store,
  });
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
