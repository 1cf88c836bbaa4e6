// Reverse tunnels (issue 21): a Kubernetes agent (the built CLI, `discover run` with only
// kubernetes_service) dials a real `kport server start` and serves HTTP/2 on the connection it
// dialled. Who may open one, what closes it, and that it comes back after a server crash.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from '../../src/api/errors.ts';
import { joinServer } from '../../src/join/network-identity.ts';
import { dialTunnel, type TunnelCredentials } from '../../src/reversetunnel/agent-dial.ts';
import { raceTimer, tempDir, waitFor } from '../peers/process.ts';
import { kubeAgent, startServer, type KubeAgent, type TestServer } from '../helpers/network.ts';

/**
 * The server's 45 s limit on a silent tunnel and the agent's PING every 15 s, scaled down so the
 * test that PINGs keep a tunnel open waits seconds, not a minute. Tunnels dialled by hand PING as
 * an agent does, so none of them ends for being idle while a test waits on another cause.
 */
const TUNNEL_IDLE_MS = 5000;
const PING_MS = 2000;

/** dialTunnel, kept from the (shortened) idle limit by PINGs as the agent's own tunnel is. */
async function dial(server: TestServer, credentials: TunnelCredentials) {
  const tunnel = await dialTunnel({ host: '127.0.0.1', port: server.port }, credentials);
  const pinging = setInterval(() => tunnel.session.ping(() => {}), PING_MS / 2).unref();
  tunnel.session.once('close', () => clearInterval(pinging));
  return tunnel;
}

interface Event {
  spec: { time: string; type: string; outcome: string; host_id?: string; reason?: string };
}

async function tunnelEvents(server: TestServer, hostId?: string): Promise<Event[]> {
  const res = await server.kport(['get', 'audit', '--format=json']);
  if (res.exitCode !== 0) throw new Error(`get audit failed: ${res.stderr}`);
  return (JSON.parse(String(res.stdout)) as Event[]).filter((e) => e.spec.type === 'agent.tunnel' && (hostId === undefined || e.spec.host_id === hostId));
}

/** A Kubernetes agent with no discovery_service, serving env=prod and PINGing its tunnel as often as the shortened limit needs. */
const prodAgent = async (server: TestServer) =>
  kubeAgent(server, { kubernetes: { resources: [{ labels: { env: 'prod' } }] }, timeouts: { tunnelPingMs: PING_MS } });

/** A joined identity of `roles`, made in this process through the real join, for dialling by hand. */
async function identity(server: TestServer, roles: string[]): Promise<{ hostId: string; credentials: TunnelCredentials }> {
  const dataDir = tempDir('tunnel-id');
  const secret = await server.token(roles.join(','));
  const joined = await joinServer({
    dataDir,
    server: { host: '127.0.0.1', port: server.port },
    pins: [server.pin],
    roles,
    discoveryGroup: '',
    token: () => secret,
    signal: new AbortController().signal,
    warn: () => {},
  });
  joined.client.close();
  const { cert, ca } = joined.identity.credential;
  return { hostId: joined.identity.host_id, credentials: { cert, ca, key: readFileSync(join(dataDir, 'identity', 'key.pem'), 'utf8') } };
}

/** TCP sockets in LISTEN state that process `pid` holds (/proc/<pid>/net/tcp{,6} by the inodes of its fds). */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {}
  }
  const listening: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // st 0A is LISTEN; column 9 is the inode.
      if (cols[3] === '0A' && inodes.has(cols[9] ?? '')) listening.push(`${table} ${cols[1]}`);
    }
  }
  return listening;
}

describe('reverse tunnels from Kubernetes agents', { concurrency: false, timeout: 300_000 }, () => {
  let s: TestServer;
  const agents: KubeAgent[] = [];
  before(async () => {
    s = await startServer({ timeouts: { tunnelIdleMs: TUNNEL_IDLE_MS } });
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const a of agents) process.stderr.write(`--- agent\n${a.log}\n`);
    for (const a of agents) a.proc?.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.proc?.catch(() => undefined)));
    await s?.stop('SIGKILL');
  });

  test('a pure Kubernetes agent opens one tunnel, listens on no port, and PING keeps it open past the server idle timeout', async () => {
    const agent = await prodAgent(s);
    agents.push(agent);
    agent.start();
    const opened = await waitFor(
      'the agent tunnel to be accepted',
      async () => {
        try {
          return (await tunnelEvents(s, agent.hostId())).find((e) => e.spec.outcome === 'allowed');
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000 },
    );
    assert.ok(opened);
    // It joined with the kube role alone and heartbeats as a kube_server.
    const agentsLs = JSON.parse(String((await s.kport(['agents', 'ls', '--format=json'])).stdout)) as Array<{ spec: { host_id: string; roles: string[] } }>;
    assert.deepEqual(agentsLs.find((a) => a.spec.host_id === agent.hostId())?.spec.roles, ['kube']);
    await waitFor(
      'its kube_server heartbeat',
      async () => {
        const res = await s.kport(['get', 'kube_server', '--format=json']);
        return res.exitCode === 0 && (JSON.parse(String(res.stdout)) as Array<{ metadata: { name: string } }>).some((k) => k.metadata.name === agent.hostId());
      },
      { timeoutMs: 30_000 },
    );

    // No listening socket at all: the server's requests come over the connection it dialled.
    assert.deepEqual(listeningSockets(agent.proc!.pid!), []);

    // Idle for longer than the server gives a silent tunnel: the agent's PINGs keep the same one open.
    await sleep(TUNNEL_IDLE_MS + 2 * PING_MS);
    const events = await tunnelEvents(s, agent.hostId());
    assert.equal(events.filter((e) => e.spec.outcome === 'allowed').length, 1, `one tunnel, never redialled: ${JSON.stringify(events)}`);
    assert.doesNotMatch(agent.log, /tunnel to .* lost/);
  });

  test('a discovery-only agent, a person-less stranger and a third tunnel of one host: refused, refused, the oldest closed', async () => {
    const discovery = await identity(s, ['discovery']);
    await assert.rejects(dialTunnel({ host: '127.0.0.1', port: s.port }, discovery.credentials), (err: unknown) => {
      assert.ok(err instanceof ApiError, String(err));
      assert.equal(err.status, 403);
      assert.match(err.message, /needs the kube role/);
      return true;
    });
    const refused = await waitFor('the audited refusal', async () => (await tunnelEvents(s, discovery.hostId)).find((e) => e.spec.outcome === 'refused'), {
      timeoutMs: 10_000,
    });
    assert.match(refused.spec.reason ?? '', /kube role/);
    assert.equal((await tunnelEvents(s, discovery.hostId)).filter((e) => e.spec.outcome === 'allowed').length, 0);

    // No client certificate at all: a 401 and nothing opened.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: s.port, ca: discovery.credentials.ca, ALPNProtocols: ['http/1.1'] }, () =>
        socket.write('GET /v1/tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: kport-tunnel/1\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (c: Buffer) => (text += c));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 401 /);
    assert.match(answer, /"code":"unauthenticated"/);

    const kube = await identity(s, ['kube']);
    const first = await dial(s, kube.credentials);
    const second = await dial(s, kube.credentials);
    const firstClosed = new Promise((resolve) => first.session.once('close', resolve));
    const third = await dial(s, kube.credentials);
    await firstClosed;
    assert.ok(!second.session.closed && !second.session.destroyed && !third.session.destroyed);
    second.session.destroy();
    third.session.destroy();
  });

  test('agents rm closes the tunnel of the removed agent, and its agent stops with the sentence that says so', async () => {
    const kube = await identity(s, ['kube']);
    const tunnel = await dial(s, kube.credentials);
    const closed = new Promise((resolve) => tunnel.session.once('close', resolve));
    const agent = agents[0]!;
    for (const hostId of [kube.hostId, agent.hostId()]) {
      const rm = await s.kport(['agents', 'rm', hostId]);
      assert.equal(rm.exitCode, 0, String(rm.stderr));
    }
    // Within the server's 30 s recheck at worst; a hang is a failure that shows the agent's log, not a stuck run.
    const stopped = await Promise.race([Promise.all([closed, agent.proc!]).then(([, result]) => result), raceTimer(45_000, 'timeout' as const)]);
    if (stopped === 'timeout') {
      agent.proc?.kill('SIGKILL');
      assert.fail(`the removed agent's tunnel did not close or the agent did not stop within 45 s:\n${agent.log}`);
    }
    const result = stopped;
    assert.equal(result.exitCode, 4, agent.log);
    assert.match(agent.log, /was removed from this cluster .*this agent stops; remove .*identity and join again/);
    // And it cannot open another.
    await assert.rejects(
      dialTunnel({ host: '127.0.0.1', port: s.port }, kube.credentials),
      (err: unknown) => err instanceof ApiError && err.code === 'agent_removed',
    );
  });

  test('server kill -9 and restart: the agent tunnel is back within 10 s of the server being ready', async () => {
    const agent = await prodAgent(s);
    agents.push(agent);
    agent.start();
    await waitFor(
      'the first tunnel',
      async () => {
        try {
          return (await tunnelEvents(s, agent.hostId())).some((e) => e.spec.outcome === 'allowed');
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000 },
    );
    await s.stop('SIGKILL');
    await sleep(2000);
    await s.start();
    const ready = Date.now();
    const back = await waitFor(
      'the tunnel after the restart',
      async () => (await tunnelEvents(s, agent.hostId())).filter((e) => e.spec.outcome === 'allowed').at(1),
      { timeoutMs: 60_000 },
    );
    const tookMs = Date.parse(back.spec.time) - ready;
    assert.ok(tookMs <= 10_000, `back ${tookMs} ms after the server was ready`);
    await waitFor('the agent to say so', async () => /tunnel to .* open again/.test(agent.log), { timeoutMs: 10_000 });
    assert.equal(agent.log.match(/tunnel to .* lost/g)?.length, 1, agent.log);
  });
});
