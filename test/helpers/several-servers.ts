// Several `kport server start` processes (the built CLI) on one etcd behind a real load balancer
// (issue 29): an etcd of 3 members, N servers each with its own data dir (so its own host id) and the
// first server's seal.key copied in, the same cluster_name and etcd storage, and HAProxy in front.
// People and agents are given the LB's address (`front`); a test kills and restarts single servers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { startHaproxy, type Haproxy } from '../peers/haproxy.ts';
import { freePort } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { startServer, type TestServer } from './network.ts';

/** What these tests need provisioned: etcd (from the Kubernetes build) and HAProxy. */
export const SEVERAL_SERVERS_PEERS = () => [BINARIES.etcd(), BINARIES.haproxy()];

export interface SeveralServers {
  etcd: EtcdCluster;
  lb: Haproxy;
  /** The servers, s0..s(N-1) in HAProxy's stats; each its own address, data dir and process. */
  servers: TestServer[];
  /** Their names in HAProxy's config and stats, in the order of `servers`. */
  names: string[];
  /** The cluster as people and agents see it: s0's admin commands, the LB's address, the one CA pin. */
  front: TestServer;
  /** A server's host id (`<data_dir>/server/host_id`), the id other parts of issue 29 key its records by. */
  hostId(i: number): string;
  /** With `diag`: server i's teleport.diag_addr (host:port). */
  diagAddress(i: number): string | undefined;
  pid(i: number): number | undefined;
  alive(i: number): boolean;
  /** kill -9 of server i; resolves once HAProxy has taken it out of rotation. */
  kill(i: number): Promise<void>;
  /** Starts server i again on its port and data dir; resolves once HAProxy has it back. */
  restart(i: number): Promise<void>;
  /**
   * Which server a connection through the LB reached, from the remote address that server recorded
   * (an audit event's remote_addr): HAProxy dials server i from its own loopback address.
   */
  serverOf(remoteAddr: string): number | undefined;
  /** Waits until HAProxy sees exactly the servers that are running as up. */
  waitRotation(): Promise<void>;
  stop(): Promise<void>;
}

type ServerOptions = NonNullable<Parameters<typeof startServer>[0]>;

export const CLUSTER_NAME = 'several.example';

/** The loopback address HAProxy dials server i from (any 127.0.0.0/8 address is this machine's, no setup). */
const sourceOf = (i: number) => `127.0.0.${10 + i}`;

/**
 * `servers` servers (3) on an etcd of `members` members (3) behind HAProxy. `server` configures
 * every `kport server start` alike (timeouts, env, auth); each gets a teleport.diag_addr and HAProxy
 * checks its /readyz there, as a deployment would (`diag: false`: plain TCP checks).
 */
export async function startSeveralServers(
  opts: {
    servers?: number;
    members?: number;
    server?: ServerOptions;
    /** Keys of server i's own (a peer address, say), merged over `server`'s. */
    each?: (i: number) => Pick<ServerOptions, 'teleport' | 'proxy' | 'auth' | 'env'>;
    diag?: boolean;
    /** HAProxy sends a PROXY v2 header (send-proxy-v2) and every server requires one (proxy_service.proxy_protocol: on). */
    proxyProtocol?: boolean;
    /** HAProxy's maxconn (4096): a bench of thousands of agents needs more (2 fds each, under `ulimit -n`). */
    lbMaxconn?: number;
  } = {},
): Promise<SeveralServers> {
  const count = opts.servers ?? 3;
  const etcd = await startEtcd({ members: opts.members ?? 3 });
  const started: TestServer[] = [];
  let lb: Haproxy | undefined;
  const stopAll = async () => {
    await Promise.all(started.map((s) => s.stop('SIGKILL')));
    await lb?.stop();
    await etcd.stop();
  };
  try {
    // The LB's port is chosen first: every server names it as its public address, before the LB
    // exists. The servers bind any free ports (0) and say which (startServer learns them).
    const lbPort = await freePort();
    const diag = opts.diag ?? true;
    const common = opts.server ?? {};
    const one = (i: number, sealKeyFrom?: TestServer) => {
      const own = opts.each?.(i) ?? {};
      return startServer({
        ...common,
        storage: { type: 'etcd', peers: etcd.endpoints, prefix: '/kport' },
        env: { ...common.env, ...own.env },
        auth: { ...common.auth, ...own.auth, cluster_name: CLUSTER_NAME },
        teleport: { ...common.teleport, ...own.teleport, ...(diag && { diag_addr: '127.0.0.1:0' }) },
        proxy: { ...common.proxy, ...own.proxy, public_addr: `127.0.0.1:${lbPort}`, ...(opts.proxyProtocol && { proxy_protocol: 'on' }) },
        ...(sealKeyFrom && { sealKeyFrom }),
      });
    };
    // The first server makes the CAs and the seal key; the others start with a copy of that key.
    started.push(await one(0));
    const rest = await Promise.allSettled(Array.from({ length: count - 1 }, (_, i) => one(i + 1, started[0])));
    for (const r of rest) if (r.status === 'fulfilled') started.push(r.value);
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    // One CA for all: each server printed the same pin.
    for (const s of started) assert.equal(s.pin, started[0]!.pin, `server ${s.address} pins another CA`);

    const names = started.map((_, i) => `s${i}`);
    lb = await startHaproxy({
      servers: started.map((s, i) => ({ name: names[i]!, address: s.address, source: sourceOf(i), ...(diag && { diagPort: s.diagPort }) })),
      port: lbPort,
      ...(opts.proxyProtocol && { sendProxy: true }),
      ...(opts.lbMaxconn && { maxconn: opts.lbMaxconn }),
    });
    const servers = started;
    const haproxy = lb;
    // Which servers this harness killed and has not restarted (execa's process says nothing of its exit until awaited).
    const killed = new Set<number>();
    const alive = (i: number) => !killed.has(i);
    const waitRotation = async () => void (await haproxy.waitUp(names.filter((_, i) => alive(i))));
    await waitRotation();
    return {
      etcd,
      lb: haproxy,
      servers,
      names,
      front: { ...servers[0]!, address: haproxy.address, port: haproxy.port },
      diagAddress: (i) => (diag ? `127.0.0.1:${servers[i]!.diagPort}` : undefined),
      hostId: (i) => readFileSync(join(servers[i]!.dir, 'data', 'server', 'host_id'), 'utf8').trim(),
      pid: (i) => servers[i]!.proc?.pid,
      alive,
      serverOf(remote) {
        const host = remote.replace(/:\d+$/, '');
        const i = names.findIndex((_, n) => sourceOf(n) === host);
        return i >= 0 ? i : undefined;
      },
      async kill(i) {
        killed.add(i);
        await servers[i]!.stop('SIGKILL');
        await waitRotation();
      },
      async restart(i) {
        await servers[i]!.start();
        killed.delete(i);
        await waitRotation();
      },
      waitRotation,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
