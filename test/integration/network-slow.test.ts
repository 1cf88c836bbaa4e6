// Network mode against slow peers (issue 18, second round): a join body sent a little at a time, a
// connection without a certificate left idle, a TCP connection that never speaks. A real
// `kport server start` process; this test process is the attacker over real TLS.
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { pinnedCa, startServer, type TestServer } from '../helpers/network.ts';
import { waitFor } from '../peers/process.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';

/** A real join (ServerClient, as an agent makes it): its host id, or the refusal's status. */
async function tryJoin(server: TestServer, ca: string, token: string): Promise<string | number> {
  const keys = await generateKeys();
  const anonymous = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
  try {
    const issued = await anonymous.rawCall<{ host_id: string }>('/v1/join', {
      token,
      roles: ['discovery'],
      hostname: 'slow',
      csr: await createCsr(keys, 'slow'),
      discovery_group: 'g',
    });
    return issued.host_id;
  } catch (err) {
    if (err instanceof ApiError) return err.status;
    throw err;
  } finally {
    anonymous.close();
  }
}

/** When (ms after `start`) a connection closed, once it has. */
function closedAt(emitter: { once(e: 'close', f: () => void): unknown }, start: number): () => number | undefined {
  let at: number | undefined;
  emitter.once('close', () => (at = Date.now() - start));
  return () => at;
}

/**
 * The server's limits, scaled down so that no test sleeps past the real ones (a join body's 10 s, a
 * silent connection's 5 s, a handshake's 10 s, an idle stranger's 20 s), in the same order and with
 * gaps wide enough for a loaded machine. The idle limit has a server of its own: on the first, a
 * flood connection idle past it would be closed for that and not for its too-slow body.
 */
const LIMITS = { joinBodyMs: 6000, silentMs: 2000, handshakeMs: 6000 };
const IDLE_MS = 2000;

describe('network mode against slow peers: bodies, idle and silent connections', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let idle: TestServer;
  let ca: string;

  before(async () => {
    // Many addresses each within the join rate: here three, with the rate lifted to stand for the rest.
    [server, idle] = await Promise.all([
      startServer({ timeouts: LIMITS, auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } }),
      startServer({ timeouts: { unauthenticatedIdleMs: IDLE_MS } }),
    ]);
    ca = await pinnedCa(server);
  });
  after(async () => {
    await Promise.all([server?.stop('SIGKILL'), idle?.stop('SIGKILL')]);
  });

  test('join bodies that never end are refused with 408 within the join-body deadline and their connections cut: a real join gets the budget back', async (t) => {
    const sessions: ClientHttp2Session[] = [];
    const statuses: Array<Promise<number | 'none'>> = [];
    const tooSlow = new Set<ClientHttp2Session>();
    const busy = new Map<string, number>();
    let lastAnswer = Date.now();
    const token = await server.token('discovery', ['--uses=2']);
    const started = Date.now();
    // Five addresses at their limits: 32 connections of 8 join bodies of 16,000 bytes, of which
    // HTTP/2 flow control lets about 64 KiB a connection through: 10 MB, past the 8 MiB budget; then
    // a sixth, once those are in, with bodies of 100 bytes to fill what 16,000-byte ones left.
    const flood = (from: string, size: number) => {
      for (let c = 0; c < 32; c++) {
        const session = h2connect(`https://127.0.0.1:${server.port}`, { ca, localAddress: from } as Parameters<typeof h2connect>[1]);
        session.on('error', () => {});
        sessions.push(session);
        for (let s = 0; s < 8; s++) {
          const stream = session.request({ ':method': 'POST', ':path': '/v1/join', 'content-type': 'application/json' });
          stream.on('error', () => {});
          stream.write(Buffer.alloc(size, 0x20));
          statuses.push(
            new Promise((resolve) => {
              stream.once('response', (h) => {
                lastAnswer = Date.now();
                if (Number(h[':status']) === 408) tooSlow.add(session);
                if (Number(h[':status']) === 503) busy.set(from, (busy.get(from) ?? 0) + 1);
                resolve(Number(h[':status']));
              });
              stream.once('close', () => resolve('none'));
              setTimeout(() => resolve('none'), 6 * LIMITS.joinBodyMs).unref();
            }),
          );
        }
      }
    };
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) flood(from, 16_000);
    try {
      // The budget is full once the server turns bodies away as busy, and held once the flood is all
      // in (no answer for half a second: a body turned away gives its bytes back while it still comes);
      // then the small bodies take what the large ones left, until they too are turned away.
      const settled = (from?: string) => async () => ((from ? busy.has(from) : busy.size > 0) && Date.now() - lastAnswer >= 500) || undefined;
      await waitFor('the large bodies to fill the budget', settled(), { timeoutMs: LIMITS.joinBodyMs });
      flood('127.0.0.7', 100);
      await waitFor('the small bodies to fill what was left', settled('127.0.0.7'), { timeoutMs: LIMITS.joinBodyMs });
      // The flood holds the budget now: the precondition of what follows.
      assert.equal(await tryJoin(server, ca, token), 503, 'a join while the budget is held is refused as busy');
      const seen = await Promise.all(statuses);
      const answered = Date.now() - started;
      const counts = Object.fromEntries(Object.entries(Object.groupBy(seen, (s) => String(s))).map(([k, v]) => [k, v!.length]));
      t.diagnostic(`${seen.length} slow join bodies, answered within ${answered} ms: ${JSON.stringify(counts)}`);
      assert.ok(!seen.includes('none'), `every slow body is answered, none held: ${JSON.stringify(counts)}`);
      assert.ok(seen.includes(408), `the bodies that were being read are refused as too slow: ${JSON.stringify(counts)}`);
      const joined = await tryJoin(server, ca, token);
      assert.equal(typeof joined, 'string', `a real join after the slow bodies were cut: ${joined}`);
      // The connections of the bodies refused as too slow were cut with them (well before the 20 s a stranger may idle).
      const stillOpen = () => [...tooSlow].filter((s) => !s.closed && !s.destroyed).length;
      await waitFor('the connections with a too-slow body to be cut', async () => stillOpen() === 0 || undefined, { timeoutMs: 5000 }).catch(() => {});
      assert.equal(stillOpen(), 0, `${stillOpen()} of ${tooSlow.size} connections with a body refused as too slow are still open`);
    } finally {
      for (const s of sessions) s.destroy();
    }
  });

  test("a connection without a host certificate that does nothing is closed at the strangers' idle limit, not the agents' 2 minutes, over HTTP/2 and HTTP/1.1", async () => {
    const idleCa = await pinnedCa(idle);
    const start = Date.now();
    const h2 = h2connect(`https://127.0.0.1:${idle.port}`, { ca: idleCa });
    h2.on('error', () => {});
    const h2Closed = closedAt(h2, start);
    const h1 = tlsConnect({ host: '127.0.0.1', port: idle.port, ca: idleCa, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    h1.on('error', () => {});
    const h1Closed = closedAt(h1, start);
    try {
      // Three times the limit (the real one: 60 s for 20 s, half the agents' idle timeout).
      for (let waited = 0; waited < 3 * IDLE_MS && (h2Closed() === undefined || h1Closed() === undefined); waited += 100) await sleep(100);
      assert.ok(h2Closed() !== undefined, `the idle HTTP/2 connection is closed within ${3 * IDLE_MS} ms`);
      assert.ok(h1Closed() !== undefined, `the idle HTTP/1.1 connection is closed within ${3 * IDLE_MS} ms`);
      // Not sooner than the limit: it is the idle timer that closed them.
      assert.ok(h2Closed()! >= IDLE_MS - 100 && h1Closed()! >= IDLE_MS - 100, `closed at ${h2Closed()} and ${h1Closed()} ms, before the ${IDLE_MS} ms limit`);
    } finally {
      h2.destroy();
      h1.destroy();
    }
  });

  test('a TCP connection that sends nothing goes sooner than one whose TLS handshake has begun', async () => {
    const start = Date.now();
    const silent = netConnect({ host: '127.0.0.1', port: server.port });
    silent.on('error', () => {});
    const silentClosed = closedAt(silent, start);
    // The first bytes of a ClientHello that promises more: a handshake under way, stalled.
    const begun = netConnect({ host: '127.0.0.1', port: server.port }, () => begun.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4])));
    begun.on('error', () => {});
    const begunClosed = closedAt(begun, start);
    try {
      for (let waited = 0; waited < 6 * LIMITS.handshakeMs && (silentClosed() === undefined || begunClosed() === undefined); waited += 100) await sleep(100);
      const [quiet, stalled] = [silentClosed(), begunClosed()];
      assert.ok(quiet !== undefined && stalled !== undefined, `both are dropped in the end (silent ${quiet} ms, begun ${stalled} ms)`);
      // 2 s against 6 s here (5 s against 10 s for real): the order and a clear gap, whatever the machine's load.
      assert.ok(stalled - quiet >= 2000, `the silent one went at ${quiet} ms, the begun one at ${stalled} ms`);
    } finally {
      silent.destroy();
      begun.destroy();
    }
  });
});
