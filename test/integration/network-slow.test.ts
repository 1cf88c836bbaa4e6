// Network mode against slow peers (issue 18, second round): a join body sent a little at a time, a
// connection without a certificate left idle, a TCP connection that never speaks. A real
// `kport server start` process; this test process is the attacker over real TLS.
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../helpers/network.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { fetchPinnedCA, ServerClient, ServerRefusal } from '../../src/client/server-client.ts';

/** A real join (ServerClient, as an agent makes it): its host id, or the refusal's status. */
async function tryJoin(server: TestServer, ca: string, token: string): Promise<string | number> {
  const keys = await generateKeys();
  const anonymous = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
  try {
    const issued = await anonymous.call<{ host_id: string }>('/v1/join', { token, roles: ['discovery'], hostname: 'slow', csr: await createCsr(keys, 'slow'), discovery_group: 'g' });
    return issued.host_id;
  } catch (err) {
    if (err instanceof ServerRefusal) return err.status;
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

describe('network mode against slow peers: bodies, idle and silent connections', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let ca: string;

  before(async () => {
    // Many addresses each within the join rate: here three, with the rate lifted to stand for the rest.
    server = await startServer({ auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } });
    ca = await fetchPinnedCA({ host: '127.0.0.1', port: server.port }, [server.pin], () => {});
  });
  after(async () => {
    await server?.stop('SIGKILL');
  });

  test('join bodies that never end are refused with 408 within 10 s and their connections cut: a real join gets the budget back', async (t) => {
    const sessions: ClientHttp2Session[] = [];
    const statuses: Array<Promise<number | 'none'>> = [];
    const tooSlow = new Set<ClientHttp2Session>();
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
          statuses.push(new Promise((resolve) => {
            stream.once('response', (h) => {
              if (Number(h[':status']) === 408) tooSlow.add(session);
              resolve(Number(h[':status']));
            });
            stream.once('close', () => resolve('none'));
            setTimeout(() => resolve('none'), 60_000).unref();
          }));
        }
      }
    };
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']) flood(from, 16_000);
    try {
      await sleep(2000);
      flood('127.0.0.7', 100);
      await sleep(1500);
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
      // The connections of the bodies refused as too slow were cut with them.
      await sleep(2000);
      const open = [...tooSlow].filter((s) => !s.closed && !s.destroyed).length;
      assert.equal(open, 0, `${open} of ${tooSlow.size} connections with a body refused as too slow are still open`);
    } finally {
      for (const s of sessions) s.destroy();
    }
  });

  test('a connection without a host certificate that does nothing is closed well before 2 minutes, over HTTP/2 and HTTP/1.1', async () => {
    const start = Date.now();
    const h2 = h2connect(`https://127.0.0.1:${server.port}`, { ca });
    h2.on('error', () => {});
    const h2Closed = closedAt(h2, start);
    const h1 = tlsConnect({ host: '127.0.0.1', port: server.port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    h1.on('error', () => {});
    const h1Closed = closedAt(h1, start);
    try {
      // 60 s: three times the limit, half the agents' idle timeout it had before.
      for (let waited = 0; waited < 60_000 && (h2Closed() === undefined || h1Closed() === undefined); waited += 250) await sleep(250);
      assert.ok(h2Closed() !== undefined, 'the idle HTTP/2 connection is closed within 60 s');
      assert.ok(h1Closed() !== undefined, 'the idle HTTP/1.1 connection is closed within 60 s');
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
      for (let waited = 0; waited < 60_000 && (silentClosed() === undefined || begunClosed() === undefined); waited += 100) await sleep(100);
      const [quiet, stalled] = [silentClosed(), begunClosed()];
      assert.ok(quiet !== undefined && stalled !== undefined, `both are dropped in the end (silent ${quiet} ms, begun ${stalled} ms)`);
      // 5 s against 10 s: the order and a clear gap, whatever the machine's load.
      assert.ok(stalled - quiet >= 2000, `the silent one went at ${quiet} ms, the begun one at ${stalled} ms`);
    } finally {
      silent.destroy();
      begun.destroy();
    }
  });
});
