// Reverse tunnels (issue 21): 1,000 simulated Kubernetes agents each holding a tunnel (PING only) to
// one `kport server start` process; the server's RSS and CPU while they idle.
//   node bench/tunnels.ts        (TUNNELS, MEASURE_S)
import { setTimeout as sleep } from 'node:timers/promises';
import { createCsr, generateKeys, keyPem } from '../src/pki/certs.ts';
import { ServerClient, fetchPinnedCA } from '../src/client/server-client.ts';
import { runAgentTunnel, TUNNEL_PING_MS } from '../src/reversetunnel/agent-dial.ts';
import { startServer } from '../test/helpers/network.ts';
import { procStat, row } from './lib.ts';

const count = Number(process.env.TUNNELS ?? 1000);
const measureMs = Number(process.env.MEASURE_S ?? 60) * 1000;
const address = (port: number) => ({ host: '127.0.0.1', port });

// 1,000 joins from one address in seconds: the join rate limit is for strangers, not this bench.
const server = await startServer({ auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } });
const pid = server.proc!.pid!;
const idle = procStat(pid);
const secret = await server.token('kube', ['--ttl=1h']);
const ca = await fetchPinnedCA(address(server.port), [server.pin], () => {});
// Each simulated agent: its own key and host certificate (joined through /v1/join), its own tunnel.
const anonymous = Array.from({ length: 10 }, () => new ServerClient(address(server.port), { ca }));
const identities: Array<{ cert: string; key: string; ca: string }> = [];
for (let i = 0; i < count; i += 50) {
  identities.push(
    ...(await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
        const keys = await generateKeys();
        const issued = await anonymous[j % 10]!.rawCall<{ cert: string }>('/v1/join', {
          token: secret,
          roles: ['kube'],
          hostname: `sim-${i + j}`,
          csr: await createCsr(keys, 'sim'),
          discovery_group: '',
        });
        return { cert: issued.cert, key: await keyPem(keys.privateKey), ca };
      }),
    )),
  );
}
for (const c of anonymous) c.close();
const afterJoins = procStat(pid);

const stop = new AbortController();
let open = 0;
let lost = 0;
const dialStart = performance.now();
const tunnels: Array<Promise<void>> = [];
// 50 at a time: the server lets one address hold 64 TLS handshakes at once.
for (let i = 0; i < identities.length; i += 50) {
  const batch = identities.slice(i, i + 50).map(
    (credentials) =>
      new Promise<void>((opened) => {
        tunnels.push(
          runAgentTunnel({
            server: address(server.port),
            credentials: () => credentials,
            signal: stop.signal,
            warn: (m) => {
              if (/lost/.test(m)) lost++;
              if (process.env.BENCH_DEBUG) process.stderr.write(`${m}\n`);
            },
            onSession: (session) => {
              open++;
              session.once('close', () => open--);
              opened();
            },
          }).catch((err: unknown) => process.stderr.write(`tunnel refused: ${(err as Error).message}\n`)),
        );
      }),
  );
  await Promise.all(batch);
}
const dialMs = performance.now() - dialStart;
// Two PING rounds before measuring: every tunnel has sent and answered a few.
await sleep(2 * TUNNEL_PING_MS);
const from = procStat(pid);
await sleep(measureMs);
const to = procStat(pid);
const stillOpen = open;
stop.abort();
await Promise.all(tunnels);
await server.stop();

const cpuShare = (to.cpuMs - from.cpuMs) / measureMs;
const out = [
  `### ${count} Kubernetes agents' reverse tunnels on one server (PING only)`,
  '',
  `${count} simulated agents in one process, each with its own key and host certificate (kube role, joined through \`/v1/join\`) and its own tunnel (TLS, \`GET /v1/tunnel\` upgrade, HTTP/2 with the roles swapped), PING every ${TUNNEL_PING_MS / 1000} s. The server is a \`kport server start\` process on sqlite; RSS and CPU from /proc over ${measureMs / 1000} s after ${(2 * TUNNEL_PING_MS) / 1000} s of warm-up.`,
  '',
  '| tunnels | dialled in s | open at the end | lost | server RSS MiB | after joins | idle | RSS per tunnel KiB | server CPU (% of a core) |',
  '|---|---|---|---|---|---|---|---|---|',
  row([
    count,
    dialMs / 1000,
    stillOpen,
    lost,
    to.rssMiB,
    afterJoins.rssMiB,
    idle.rssMiB,
    ((to.rssMiB - afterJoins.rssMiB) * 1024) / count,
    `${(cpuShare * 100).toFixed(1)}%`,
  ]),
  '',
];
process.stdout.write(`${out.join('\n')}\nnode ${process.version}, ${new Date().toISOString()}\n`);
if (stillOpen !== count || to.rssMiB >= 500) process.exitCode = 1;
