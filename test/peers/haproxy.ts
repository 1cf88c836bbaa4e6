// HAProxy in front of several kport servers (issue 29 "One address in front"): a real TCP load
// balancer, provisioned by provision.ts from Debian's packages and run with the libraries unpacked
// beside it. Mode tcp, so each server's TLS passes through untouched (the client still checks the
// server's certificate and pin, and a person's client certificate reaches the server); round-robin;
// each server health-checked, on its diagnostics port's /readyz when it has one, else by a TCP connect.
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, spawnPeer, tempDir, waitFor, type Peer } from './process.ts';
import { BINARIES, haproxyLibDir } from './versions.ts';

export interface LbServer {
  /** The backend server's name in HAProxy's config and stats. */
  name: string;
  /** host:port of the server's TLS listener. */
  address: string;
  /** The server's teleport.diag_addr port: checked with GET /readyz there (200 is up). */
  diagPort?: number;
  /** The local address HAProxy dials this server from (a loopback address of its own tells servers apart in what they record). */
  source?: string;
}

/** One backend server's row of `show stat`. */
export interface LbServerStat {
  name: string;
  address: string;
  /** UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT... */
  status: string;
  /** Connections open now. */
  current: number;
  /** Connections it was given since HAProxy started. */
  total: number;
  /** Connections it refused (or failed) that HAProxy then gave to another server. */
  redispatched: number;
  /** The last health check's outcome, e.g. L4OK, L4CON (refused), L7OK, L7STS (a status that is not 200). */
  check: string;
}

export interface Haproxy {
  /** 127.0.0.1:<port>: the one address people and agents are given. */
  address: string;
  port: number;
  peer: Peer;
  /** How often each server is checked, and how many checks in a row turn it down or up (stated, short for tests). */
  check: { interMs: number; fall: number; rise: number };
  stats(): Promise<LbServerStat[]>;
  /** Waits until exactly the servers named are UP (every other one not), and returns the stats. */
  waitUp(names: string[], opts?: { timeoutMs?: number }): Promise<LbServerStat[]>;
  /** A command of HAProxy's runtime API on its admin socket (`show stat`, `disable server kport/s1`...): its answer. */
  command(line: string): Promise<string>;
  stop(): Promise<void>;
}

export const BACKEND = 'kport';

/** Short checks for tests: a dead server is out of rotation after fall × inter (1 s), a live one back after rise × inter. */
const CHECK = { interMs: 500, fall: 2, rise: 2 };

function config(port: number, socket: string, servers: LbServer[], check: Haproxy['check'], maxconn: number, sendProxy: boolean): string {
  // /readyz when every server has a diagnostics port (one backend has one kind of check).
  const http = servers.every((s) => s.diagPort !== undefined);
  return [
    'global',
    `  stats socket ${socket} mode 600 level admin`,
    // HAProxy needs two descriptors a connection and refuses to start past the process's limit.
    `  maxconn ${maxconn}`,
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    // Agents' tunnels and watches are long-lived and may be silent between PINGs: HAProxy never
    // cuts an open connection a server and its client both keep.
    '  timeout client 1h',
    '  timeout server 1h',
    // A connection refused by a server that died before its checks noticed is retried on another
    // server, so a new connection never lands on a dead one (retry-on conn-failure is tcp's default).
    '  retries 3',
    '  option redispatch 1',
    'frontend people_and_agents',
    `  bind 127.0.0.1:${port}`,
    `  default_backend ${BACKEND}`,
    `backend ${BACKEND}`,
    '  balance roundrobin',
    ...(http ? ['  option httpchk GET /readyz', '  http-check expect status 200'] : []),
    `  default-server check inter ${check.interMs}ms fall ${check.fall} rise ${check.rise}`,
    // send-proxy-v2: each connection to a server begins with a PROXY v2 header naming the client
    // (proxy_service.proxy_protocol: on); a TCP check of the main port sends one too.
    ...servers.map(
      (s) =>
        `  server ${s.name} ${s.address}${http ? ` port ${s.diagPort}` : ''}${s.source ? ` source ${s.source}` : ''}${sendProxy ? ` send-proxy-v2${http ? '' : ' check-send-proxy'}` : ''}`,
    ),
    '',
  ].join('\n');
}

/** Sends one runtime API command on the admin socket and reads the answer until HAProxy closes it. */
function ask(socket: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let answer = '';
    conn.setEncoding('utf8');
    conn.setTimeout(5000, () => conn.destroy(new Error(`HAProxy did not answer "${line}" within 5 s`)));
    conn.on('data', (c: string) => (answer += c));
    conn.on('error', reject);
    conn.on('end', () => resolve(answer));
    conn.write(`${line}\n`);
  });
}

function parseStat(csv: string): LbServerStat[] {
  const [header, ...rows] = csv.trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const at = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
  return rows
    .map((r) => r.split(','))
    .filter((row) => at(row, 'pxname') === BACKEND && at(row, 'svname') !== 'BACKEND')
    .map((row) => ({
      name: at(row, 'svname'),
      address: at(row, 'addr'),
      status: at(row, 'status'),
      current: Number(at(row, 'scur')),
      total: Number(at(row, 'stot')),
      redispatched: Number(at(row, 'wredis')),
      check: at(row, 'check_status'),
    }));
}

/** HAProxy in the foreground (-db) on a loopback port (`port`, else a free one), in front of `servers`. */
export async function startHaproxy(opts: {
  servers: LbServer[];
  check?: Partial<Haproxy['check']>;
  maxconn?: number;
  port?: number;
  /** Send a PROXY protocol v2 header to the servers (HAProxy's send-proxy-v2). */
  sendProxy?: boolean;
}): Promise<Haproxy> {
  const dir = tempDir('haproxy');
  const port = opts.port ?? (await freePort());
  const socket = join(dir, 'admin.sock');
  const check = { ...CHECK, ...opts.check };
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config(port, socket, opts.servers, check, opts.maxconn ?? 4096, opts.sendProxy ?? false));
  const peer = spawnPeer('haproxy', BINARIES.haproxy(), ['-db', '-f', file], { dir, env: { LD_LIBRARY_PATH: haproxyLibDir() } });
  const lb: Haproxy = {
    address: `127.0.0.1:${port}`,
    port,
    peer,
    check,
    stats: async () => parseStat(await ask(socket, 'show stat')),
    command: (line) => ask(socket, line),
    async waitUp(names, o = {}) {
      const want = [...names].sort().join(',');
      let last: LbServerStat[] = [];
      try {
        return await waitFor(
          `HAProxy to see exactly ${want || 'no server'} up`,
          async () => {
            last = await lb.stats();
            const up = last
              .filter((s) => s.status === 'UP')
              .map((s) => s.name)
              .sort()
              .join(',');
            return up === want && last.every((s) => s.status === 'UP' || s.status.startsWith('DOWN') || s.status === 'MAINT') ? last : undefined;
          },
          { timeoutMs: o.timeoutMs ?? 30_000, peer },
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}\nlast stats: ${JSON.stringify(last)}`);
      }
    },
    stop: () => peer.stop(),
  };
  await waitFor('HAProxy to answer on its admin socket', async () => (await lb.stats()).length === opts.servers.length, { timeoutMs: 15_000, peer });
  return lb;
}
