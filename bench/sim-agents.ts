// Simulated Kubernetes agents for bench/several-servers.ts: each its own key and host certificate
// (kube role, joined through /v1/join, 50 at a time as bench/tunnels.ts joins them), its own reverse
// tunnel (runAgentTunnel, PING only), and optionally its kube_server heartbeat every 30 s through
// /v1/backend, written as src/kube/server-heartbeat.ts writes it (the raw call bench/store-writes.ts
// makes), on a connection of its own as a real agent's RemoteBackend has.
// Run as a child (`node bench/sim-agents.ts`, SIM_AGENTS = JSON of ChildSpec): it joins and dials
// its share, then prints one JSON line of counts every second until it is killed.
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ServerClient, type ServerAddress } from '../src/client/server-client.ts';
import { createCsr, generateKeys, keyPem } from '../src/pki/certs.ts';
import { KUBE_SERVER } from '../src/resources/kube-server.ts';
import { resourceKey } from '../src/resources/resource.ts';
import { runAgentTunnel } from '../src/reversetunnel/agent-dial.ts';

export const HEARTBEAT_MS = 30_000;

export interface SimAgent {
  hostId: string;
  cert: string;
  key: string;
}

export interface SimCounts {
  joined: number;
  /** Tunnels open now; `dialled` of them have opened at least once. */
  open: number;
  dialled: number;
  lost: number;
  refused: number;
  beats: number;
  beatsFailed: number;
}

/**
 * `count` agents joined through `address` with `token`, `batch` at a time; a join refused or dropped on
 * this busy machine is asked again, up to 5 times, a second apart (the joins are not what is measured).
 */
export async function joinAgents(
  address: ServerAddress,
  ca: string,
  token: string,
  count: number,
  name: string,
  counts?: SimCounts,
  batch = 50,
): Promise<SimAgent[]> {
  const anonymous = Array.from({ length: 10 }, () => new ServerClient(address, { ca }));
  const joined: SimAgent[] = [];
  try {
    for (let i = 0; i < count; i += batch) {
      joined.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(batch, count - i) }, async (_, j) => {
            const keys = await generateKeys();
            const body = { token, roles: ['kube'], hostname: `${name}-${i + j}`, csr: await createCsr(keys, 'sim'), discovery_group: '' };
            const join = () => anonymous[j % 10]!.rawCall<{ cert: string; host_id: string }>('/v1/join', body);
            let issued: { cert: string; host_id: string } | undefined;
            for (let attempt = 1; !issued; attempt++) {
              issued = await join().catch(async (err: unknown) => {
                if (attempt === 5) throw err;
                if (process.env.BENCH_DEBUG) process.stderr.write(`join ${name}-${i + j}: ${(err as Error).message}\n`);
                await sleep(1000);
                return undefined;
              });
            }
            if (counts) counts.joined++;
            return { hostId: issued.host_id, cert: issued.cert, key: await keyPem(keys.privateKey) };
          }),
        )),
      );
    }
  } finally {
    for (const c of anonymous) c.close();
  }
  return joined;
}

/**
 * Every agent's tunnel through `address` until `signal`, at most `batch` dials at a time (the server
 * lets one address hold 64 TLS handshakes at once); resolves once each has opened once. A dial that
 * has not opened within 3 s (refused, in its backoff) gives its place to the next, so one slow dial
 * does not hold up the rest. `tunnels` collects the runAgentTunnel promises (they resolve when
 * `signal` ends them).
 */
export async function dialTunnels(
  address: ServerAddress,
  ca: string,
  agents: SimAgent[],
  signal: AbortSignal,
  counts: SimCounts,
  tunnels: Array<Promise<void>>,
  batch = 50,
): Promise<void> {
  const opened: Array<Promise<void>> = [];
  let next = 0;
  const dialNext = async (): Promise<void> => {
    while (next < agents.length) {
      const agent = agents[next++]!;
      let first = true;
      const open = new Promise<void>((resolve) => {
        tunnels.push(
          runAgentTunnel({
            server: address,
            credentials: () => ({ cert: agent.cert, key: agent.key, ca }),
            signal,
            warn: (m) => {
              if (/lost/.test(m)) counts.lost++;
              if (process.env.BENCH_DEBUG) process.stderr.write(`${m}\n`);
            },
            onSession: (session) => {
              counts.open++;
              session.once('close', () => counts.open--);
              if (first) counts.dialled++;
              first = false;
              resolve();
            },
          }).catch((err: unknown) => {
            counts.refused++;
            process.stderr.write(`tunnel refused: ${(err as Error).message}\n`);
            resolve();
          }),
        );
      });
      opened.push(open);
      await Promise.race([open, sleep(3000)]);
    }
  };
  await Promise.all(Array.from({ length: batch }, dialNext));
  await Promise.all(opened);
}

/** Each agent's kube_server heartbeat every HEARTBEAT_MS until `signal`, spread over the interval. */
export function runHeartbeats(address: ServerAddress, ca: string, agents: SimAgent[], signal: AbortSignal, counts: SimCounts): Promise<void> {
  const started = new Date().toISOString();
  return Promise.all(
    agents.map(async (agent, i) => {
      const client = new ServerClient(address, { ca, cert: agent.cert, key: agent.key });
      await sleep((i * HEARTBEAT_MS) / agents.length, undefined, { signal }).catch(() => undefined);
      while (!signal.aborted) {
        const at = new Date();
        const value = {
          kind: KUBE_SERVER,
          version: 'v1',
          metadata: { name: agent.hostId, description: 'kport kubernetes service on sim', expires: new Date(at.getTime() + 3 * HEARTBEAT_MS).toISOString() },
          spec: { host_id: agent.hostId, hostname: 'sim', clusters: [], started, last_heartbeat: at.toISOString() },
        };
        counts.beats++;
        await client
          .rawCall('/v1/backend', { op: 'put', key: resourceKey(KUBE_SERVER, agent.hostId), value: JSON.stringify(value), ttl_ms: 3 * HEARTBEAT_MS })
          .catch(() => counts.beatsFailed++);
        await sleep(HEARTBEAT_MS, undefined, { signal }).catch(() => undefined);
      }
      client.close();
    }),
  ).then(() => undefined);
}

export const newCounts = (): SimCounts => ({ joined: 0, open: 0, dialled: 0, lost: 0, refused: 0, beats: 0, beatsFailed: 0 });

export interface ChildSpec {
  address: ServerAddress;
  ca: string;
  token: string;
  count: number;
  name: string;
  batch: number;
}

// A child: its share of agents, joined, tunnelled and heartbeating until killed; counts on stdout each second.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const spec = JSON.parse(process.env.SIM_AGENTS ?? '') as ChildSpec;
  const counts = newCounts();
  const report = setInterval(() => process.stdout.write(`${JSON.stringify(counts)}\n`), 1000);
  const stop = new AbortController();
  const agents = await joinAgents(spec.address, spec.ca, spec.token, spec.count, spec.name, counts, spec.batch);
  // Tunnels first, then heartbeats (spread over their interval): the dials do not queue behind 2,500 heartbeat connections' handshakes.
  const tunnels: Array<Promise<void>> = [];
  await dialTunnels(spec.address, spec.ca, agents, stop.signal, counts, tunnels, spec.batch);
  const beats = runHeartbeats(spec.address, spec.ca, agents, stop.signal, counts);
  process.once('SIGTERM', () => {
    stop.abort();
    clearInterval(report);
    void Promise.all([beats, ...tunnels]).then(() => process.exit(0));
  });
}
