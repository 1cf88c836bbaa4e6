import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError, UserError } from '../../core/errors.ts';
import { serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const DEFAULT_LISTEN_ADDR = '127.0.0.1:3080';

/** `host:port`, `:port` or `[v6]:port` as Teleport's listen addresses are written. */
export function parseListenAddr(value: string, key: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new UsageError(`${key} "${value}" is not host:port, such as ${DEFAULT_LISTEN_ADDR}.`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

export const serverStart: CommandDef = {
  path: ['server', 'start'],
  summary: 'Run the kport server in the foreground: auth (CAs, joins) and proxy on one TLS port',
  examples: [
    'kport server start -c kport.yaml',
    'kport server start -c kport.yaml -o json',
  ],
  async run({ ctx, session }) {
    const config = await session.config();
    const where = config.source ?? 'the configuration';
    if (!config.auth_service?.enabled || !config.proxy_service?.enabled) {
      throw new UsageError(`kport server start runs the auth and proxy services: set auth_service.enabled: yes and proxy_service.enabled: yes in ${where}.`);
    }
    if (config.teleport.proxy_server) throw new UsageError(`${where} sets teleport.proxy_server, which is for agents joining a server: a server leaves it out.`);
    const proxy = config.proxy_service;
    const listenKey = proxy.listen_addr ? 'proxy_service.listen_addr' : 'proxy_service.web_listen_addr';
    const listen = parseListenAddr(proxy.listen_addr ?? proxy.web_listen_addr ?? DEFAULT_LISTEN_ADDR, listenKey);
    const publicNames = [proxy.public_addr ?? []].flat().map((a) => a.replace(/^\[|\](?=:|$)/g, '').replace(/:\d+$/, ''));

    const backend = await session.backend();
    const [{ loadAuthorities }, { ServerAudit }, { KportServer }] = await Promise.all([import('../../server/authorities.ts'), import('../../server/audit.ts'), import('../../server/server.ts')]);
    const { authorities, created } = await loadAuthorities(backend, config.dataDir);
    const audit = new ServerAudit(backend, { retentionMs: config.auth_service.audit_retention, log: (line) => ctx.stderr.write(`${line}\n`), now: ctx.now });
    const server = new KportServer({ backend, authorities, audit, host: listen.host, port: listen.port, publicNames, hostCertTtlMs: config.auth_service.host_cert_ttl, log: (line) => ctx.stderr.write(`${line}\n`), now: ctx.now });
    const address = await server.listen().catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
        const why = { EADDRINUSE: 'the port is already in use (another server?)', EACCES: 'permission denied (ports below 1024 need privileges)', EADDRNOTAVAIL: 'no such local address' }[err.code];
        throw new UserError(`Cannot listen on ${listen.host}:${listen.port} (${listenKey}): ${why}; stop what holds it or set another ${listenKey}.`);
      }
      throw err;
    });
    const url = `https://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    if (session.format !== 'text') {
      ctx.stdout.write(serialize({ listen: url, ca_pin: authorities.pin, created_authorities: created }, session.format));
    } else {
      if (created) ctx.stdout.write('Created the cluster CAs (server TLS, host, user) in the store; their keys are sealed with ' + join(config.dataDir, 'server', 'seal.key') + '.\n');
      ctx.stdout.write(`kport server listening on ${url}\nCA pin: ${authorities.pin}\n`);
    }

    // With discovery or kubernetes_service enabled the server runs them in-process on its own store, as Teleport's guide does.
    let services: Promise<unknown> = Promise.resolve();
    if (config.discovery_service?.enabled) {
      const { runDiscovery } = await import('../discover/run.ts');
      services = runDiscovery({ ctx, format: session.format, discovery: config.discovery_service, kube: config.kubernetes_service, backend, hostId: serverHostId(config.dataDir), once: false, signal: ctx.signal }).catch((err) => {
        ctx.logger.error(`the in-process discovery service stopped: ${(err as Error).message}`);
      });
    } else if (config.kubernetes_service?.enabled) {
      const { runKubeServerHeartbeat } = await import('../../kube/server-heartbeat.ts');
      services = runKubeServerHeartbeat({ backend, hostId: serverHostId(config.dataDir), service: config.kubernetes_service, signal: ctx.signal, now: ctx.now }).catch((err) => {
        ctx.logger.error(`the in-process kubernetes service stopped: ${(err as Error).message}`);
      });
    }
    await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener('abort', () => resolve(), { once: true })));
    await Promise.all([server.close(), services]);
    return (ctx.signal.reason as Error)?.message === 'SIGTERM' ? 0 : 130;
  },
};

/** The server's own host id, for the services it runs in-process; kept in `<data_dir>/server/host_id`. */
function serverHostId(dataDir: string): string {
  const path = join(dataDir, 'server', 'host_id');
  try {
    const kept = readFileSync(path, 'utf8').trim();
    if (kept) return kept;
  } catch {}
  const id = randomUUID();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${id}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return id;
}
