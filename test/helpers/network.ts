// Network mode in tests: a real `kport server start` process and `kport discover run` agents that join it.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { fetchPinnedCA, ServerClient } from '../../src/client/server-client.ts';
import type { TestTimeouts } from '../../src/config/test-timeouts.ts';
import { createCsr, generateKeys, keyPem } from '../../src/pki/certs.ts';
import type { Moto } from '../peers/moto.ts';
import { tempDir, waitFor } from '../peers/process.ts';
import { NODE_CLI, runCli, type Cli } from './cli.ts';

export interface TestServer {
  dir: string;
  port: number;
  address: string;
  /** The diagnostics port, when teleport.diag_addr was given (one ending in :0 is learned at the first start). */
  diagPort?: number;
  pin: string;
  log: string;
  /** What the server printed on stdout since its last start (the ready line, a first-user invite). */
  out: string;
  proc?: ResultPromise;
  /** kport with the server's config: the admin on the server machine (tokens, agents, get). */
  kport(args: string[]): ResultPromise;
  token(type: string, extra?: string[]): Promise<string>;
  start(): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The environment that shortens a server's or an agent's waits (src/config/test-timeouts.ts), so a test need not sleep past the real ones. */
export function timeoutsEnv(timeouts: TestTimeouts | undefined): Record<string, string> {
  return timeouts ? { KPORT_TEST_TIMEOUTS: JSON.stringify(timeouts) } : {};
}

export async function startServer(
  opts: {
    timeouts?: TestTimeouts;
    hostCertTtl?: string;
    discovery?: unknown;
    kubernetes?: unknown;
    env?: Record<string, string>;
    storage?: unknown;
    auth?: Record<string, unknown>;
    port?: number;
    cli?: Cli;
    /** Another server of the same cluster: its seal.key is copied in before this one starts (several servers on one store). */
    sealKeyFrom?: TestServer;
    /** More teleport / proxy_service keys (several servers: diag_addr, public_addr). */
    teleport?: Record<string, unknown>;
    proxy?: Record<string, unknown>;
  } = {},
): Promise<TestServer> {
  const dir = tempDir('server');
  // Without a port the server binds any free one (port 0) and says which: a port picked here and
  // bound later could be taken in between by anything else on a busy machine. Once known, the
  // config names it, so a restart binds the same one.
  const port = opts.port ?? 0;
  const config = join(dir, 'kport.yaml');
  const writeConfig = (listen: number, diagPort?: number) =>
    writeFileSync(
      config,
      stringify({
        version: 'v3',
        teleport: {
          data_dir: join(dir, 'data'),
          ...(opts.storage ? { storage: opts.storage } : {}),
          ...opts.teleport,
          ...(diagPort && { diag_addr: `127.0.0.1:${diagPort}` }),
        },
        auth_service: { enabled: 'yes', ...(opts.hostCertTtl && { host_cert_ttl: opts.hostCertTtl }), ...opts.auth },
        proxy_service: { enabled: 'yes', listen_addr: `127.0.0.1:${listen}`, ...opts.proxy },
        ...(opts.discovery ? { discovery_service: opts.discovery } : {}),
        ...(opts.kubernetes ? { kubernetes_service: opts.kubernetes } : {}),
      }),
    );
  writeConfig(port);
  const env = { ...opts.env, ...timeoutsEnv(opts.timeouts), HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config };
  const server: TestServer = {
    dir,
    port,
    address: `127.0.0.1:${port}`,
    pin: '',
    log: '',
    out: '',
    kport: (args) => runCli(opts.cli ?? NODE_CLI, args, { cwd: dir, env, extendEnv: false, reject: false }),
    async token(type, extra = []) {
      const res = await server.kport(['tokens', 'add', `--type=${type}`, '--format=text', ...extra]);
      if (res.exitCode !== 0) throw new Error(`tokens add failed: ${res.stderr}`);
      return String(res.stdout).trim();
    },
    async start() {
      const proc = runCli(opts.cli ?? NODE_CLI, ['server', 'start'], { cwd: dir, env, extendEnv: false, reject: false });
      server.proc = proc;
      server.out = '';
      proc.stdout!.on('data', (c: Buffer) => (server.out += c));
      proc.stderr!.on('data', (c: Buffer) => (server.log += c));
      let exited: number | undefined;
      void proc.then((r) => (exited = r.exitCode ?? -1));
      server.pin = await waitFor(
        'the server to be ready',
        async () => /CA pin: (sha256:[0-9a-f]{64})/.exec(server.out)?.[1] ?? (exited !== undefined ? 'exited' : undefined),
        { timeoutMs: 30_000 },
      );
      if (server.pin === 'exited') throw new Error(`kport server start exited ${exited}: ${server.log}`);
      const diag = Number(/Diagnostics \(.*\) on http:\/\/[^\s]*:(\d+)\./.exec(server.out)?.[1]) || undefined;
      if (server.port === 0 || (diag && !server.diagPort)) {
        const bound = Number(/kport server listening on https:\/\/[^\s]*:(\d+),/.exec(server.out)?.[1]);
        if (!bound) throw new Error(`kport server start did not say its port: ${server.out}`);
        server.port = bound;
        server.address = `127.0.0.1:${bound}`;
        if (diag) server.diagPort = diag;
        writeConfig(bound, server.diagPort);
      }
    },
    async stop(signal = 'SIGTERM') {
      server.proc?.kill(signal);
      await server.proc?.catch(() => undefined);
    },
  };
  if (opts.sealKeyFrom) {
    const key = join(dir, 'data', 'server', 'seal.key');
    mkdirSync(join(dir, 'data', 'server'), { recursive: true, mode: 0o700 });
    copyFileSync(join(opts.sealKeyFrom.dir, 'data', 'server', 'seal.key'), key);
    chmodSync(key, 0o600);
  }
  await server.start();
  return server;
}

/** The server's TLS CA, checked against its pin as an agent's first call checks it. */
export function pinnedCa(server: TestServer): Promise<string> {
  return fetchPinnedCA({ host: '127.0.0.1', port: server.port }, [server.pin], () => {});
}

/** What `/v1/join` answers (src/server/auth/join.ts), with the key this process made for it. */
export interface HandJoined {
  host_id: string;
  roles: string[];
  cert: string;
  ca: string;
  expires: string;
  key: string;
}

/**
 * A host joined from the test process by the real `/v1/join` call, without `kport discover run`: its
 * certificate and key, for calls and connections made by hand. A fresh token of `roles` unless one is
 * given; `hostname` is only what the agent says of itself (the request's key is what counts).
 */
export async function joinByHand(
  server: TestServer,
  ca: string,
  opts: { roles?: string[]; token?: string; group?: string; hostname?: string; pair?: CryptoKeyPair } = {},
): Promise<HandJoined> {
  const roles = opts.roles ?? ['discovery'];
  const pair = opts.pair ?? (await generateKeys());
  const anonymous = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
  try {
    const token = opts.token ?? (await server.token(roles.join(',')));
    const issued = await anonymous.rawCall<Omit<HandJoined, 'key'>>('/v1/join', {
      token,
      roles,
      hostname: opts.hostname ?? 'agent-host',
      csr: await createCsr(pair, 'agent-host'),
      discovery_group: opts.group ?? 'prod',
    });
    return { ...issued, key: await keyPem(pair.privateKey) };
  } finally {
    anonymous.close();
  }
}

export interface NetworkAgent {
  name: string;
  dir: string;
  dataDir: string;
  config: string;
  log: string;
  proc?: ResultPromise;
  alive: boolean;
  hostId(): string;
  start(args?: string[]): ResultPromise;
  kport(args: string[]): ResultPromise;
}

/** A discovery agent that knows only the server's address, its CA pin and a token file. */
export async function networkAgent(
  moto: Moto,
  server: TestServer,
  opts: {
    name: string;
    group: string;
    matchers: unknown[];
    leaseTtl?: string;
    pollInterval?: string;
    token?: string;
    pin?: string;
    kubernetes?: unknown;
    cli?: Cli;
    timeouts?: TestTimeouts;
  },
): Promise<NetworkAgent> {
  const dir = tempDir(`agent-${opts.name}`);
  const config = join(dir, 'kport.yaml');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, opts.token ?? (await server.token(opts.kubernetes ? 'discovery,kube' : 'discovery')), { mode: 0o600 });
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: {
        data_dir: join(dir, 'data'),
        proxy_server: server.address,
        ca_pin: opts.pin ?? server.pin,
        join_params: { token_name: tokenFile, method: 'token' },
      },
      auth_service: { enabled: 'off' },
      proxy_service: { enabled: 'off' },
      ssh_service: { enabled: 'off' },
      discovery_service: {
        enabled: 'yes',
        discovery_group: opts.group,
        poll_interval: opts.pollInterval ?? '2s',
        leader_lease_ttl: opts.leaseTtl ?? '2s',
        aws: opts.matchers,
      },
      ...(opts.kubernetes ? { kubernetes_service: opts.kubernetes } : {}),
    }),
  );
  const env = { ...moto.env, ...timeoutsEnv(opts.timeouts), HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config };
  const agent: NetworkAgent = {
    name: opts.name,
    dir,
    dataDir: join(dir, 'data'),
    config,
    log: '',
    alive: false,
    hostId: () => JSON.parse(readFileSync(join(dir, 'data', 'identity', 'identity.json'), 'utf8')).host_id,
    kport: (args) => runCli(opts.cli ?? NODE_CLI, args, { cwd: dir, env, extendEnv: false, reject: false }),
    start(args = ['discover', 'run']) {
      const proc = agent.kport(args);
      agent.proc = proc;
      agent.alive = true;
      void proc.finally(() => {
        if (agent.proc === proc) agent.alive = false;
      });
      proc.stderr!.on('data', (c: Buffer) => (agent.log += c));
      return proc;
    },
  };
  return agent;
}

export interface KubeAgent {
  dir: string;
  dataDir: string;
  log: string;
  proc?: ResultPromise;
  hostId(): string;
  /** The host certificate and key it joined with (its identity files). */
  credential(): { cert: string; key: string };
  /** Requests this agent sent to a cluster: the lines of its own audit file. */
  requests(): number;
  /** Those lines, parsed: who each request was sent as, and where. */
  audit(): Array<{ impersonated_user: string; impersonated_groups: string[]; path: string; status: number }>;
  start(): ResultPromise;
  kill(): Promise<void>;
}

/**
 * A pure Kubernetes agent (`kport discover run` with only kubernetes_service, the built CLI) that
 * joins `server` with `token` (a fresh kube one by default) and serves what `kubernetes` selects; a
 * `kubeconfig` given is written beside it and served as its kubeconfig_file. Not started.
 */
export async function kubeAgent(
  server: TestServer,
  opts: { kubernetes: Record<string, unknown>; kubeconfig?: string; token?: string; timeouts?: TestTimeouts; name?: string },
): Promise<KubeAgent> {
  const dir = tempDir(opts.name ?? 'kube-agent');
  const config = join(dir, 'kport.yaml');
  const dataDir = join(dir, 'data');
  writeFileSync(join(dir, 'token'), opts.token ?? (await server.token('kube')), { mode: 0o600 });
  if (opts.kubeconfig !== undefined) writeFileSync(join(dir, 'clusters.kubeconfig'), opts.kubeconfig, { mode: 0o600 });
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: dataDir, proxy_server: server.address, ca_pin: server.pin, join_params: { token_name: join(dir, 'token'), method: 'token' } },
      auth_service: { enabled: 'off' },
      proxy_service: { enabled: 'off' },
      kubernetes_service: { enabled: 'yes', ...(opts.kubeconfig !== undefined && { kubeconfig_file: join(dir, 'clusters.kubeconfig') }), ...opts.kubernetes },
    }),
  );
  const env = { ...timeoutsEnv(opts.timeouts), HOME: dir, PATH: process.env.PATH ?? '', KPORT_CONFIG: config };
  const identity = () => JSON.parse(readFileSync(join(dataDir, 'identity', 'identity.json'), 'utf8'));
  const agent: KubeAgent = {
    dir,
    dataDir,
    log: '',
    hostId: () => identity().host_id as string,
    credential: () => ({ cert: identity().credential.cert, key: readFileSync(join(dataDir, 'identity', 'key.pem'), 'utf8') }),
    requests() {
      return agent.audit().length;
    },
    audit() {
      const file = join(dataDir, 'audit', 'kube.log');
      return existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l))
        : [];
    },
    start() {
      const proc = runCli(NODE_CLI, ['discover', 'run'], { cwd: dir, env, extendEnv: false, reject: false });
      proc.stderr!.on('data', (c: Buffer) => (agent.log += c));
      agent.proc = proc;
      return proc;
    },
    async kill() {
      agent.proc?.kill('SIGKILL');
      await agent.proc?.catch(() => undefined);
    },
  };
  return agent;
}

export async function serverClusters(
  server: TestServer,
): Promise<Array<{ metadata: { name: string; labels: Record<string, string> }; spec: Record<string, unknown> }>> {
  const res = await server.kport(['get', 'kube_cluster', '--format=json']);
  if (res.exitCode !== 0) throw new Error(`get kube_cluster failed: ${res.stderr}`);
  return JSON.parse(String(res.stdout));
}

export async function auditEvents(
  server: TestServer,
): Promise<Array<{ spec: { type: string; outcome: string; reason?: string; host_id?: string; token_name?: string; action?: string } }>> {
  const res = await server.kport(['get', 'audit', '--format=json']);
  if (res.exitCode !== 0) throw new Error(`get audit failed: ${res.stderr}`);
  return JSON.parse(String(res.stdout));
}

/** The one agent whose latest state line says it leads. */
export async function waitForNetworkLeader(agents: NetworkAgent[], opts: { not?: NetworkAgent; timeoutMs?: number } = {}): Promise<NetworkAgent> {
  return waitFor(
    'one leader',
    async () => {
      const leaders = agents.filter(
        (a) =>
          a !== opts.not &&
          a.alive &&
          /leading discovery group/.test(
            a.log
              .split('\n')
              .filter((l) => /leading discovery group|standby/.test(l))
              .at(-1) ?? '',
          ),
      );
      return leaders.length === 1 ? leaders[0] : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000 },
  );
}
