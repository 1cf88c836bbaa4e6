// HAProxy as test/peers/haproxy.ts runs it in front of several servers (issue 29), shown on its own
// with plain TCP and HTTP servers: the properties the several-servers tests rely on.
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, connect as tcpConnect, type Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { startHaproxy } from '../peers/haproxy.ts';
import { havePeer } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

describe('HAProxy as these tests run it', { concurrency: false, timeout: 60_000 }, () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });
  /** Listening on a free loopback port: its port. */
  const listen = async (server: Server) => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  };
  /** A TCP server that answers each connection with its name. */
  const named = (name: string) => listen(createTcpServer((c) => c.end(name)));
  const ask = (port: number) =>
    new Promise<string>((resolve, reject) => {
      let answer = '';
      const c = tcpConnect(port, '127.0.0.1');
      c.setEncoding('utf8');
      c.on('data', (d: string) => (answer += d));
      c.on('end', () => resolve(answer));
      c.on('error', reject);
    });

  test('a connection given to a server that died before its checks noticed is redispatched to a live one', async (t) => {
    if (!havePeer(t, 'HAProxy', [BINARIES.haproxy()])) return;
    const ports = [await named('s0'), await named('s1'), await named('s2')];
    const lb = await startHaproxy({ servers: ports.map((p, i) => ({ name: `s${i}`, address: `127.0.0.1:${p}` })) });
    t.after(() => lb.stop());
    await lb.waitUp(['s0', 's1', 's2']);
    // s1 stays UP in HAProxy's view (its checks off) while nothing listens there any more.
    await lb.command('disable health kport/s1');
    await new Promise((resolve) => servers[1]!.close(resolve));
    const answers = [];
    for (let n = 0; n < 6; n++) answers.push(await ask(lb.port));
    assert.deepEqual(
      answers.filter((a) => a !== 's0' && a !== 's2'),
      [],
      answers.join(','),
    );
    const s1 = (await lb.stats()).find((s) => s.name === 's1')!;
    // Still in rotation, unchecked: each connection round-robin gave it went to another server.
    assert.equal(s1.status, 'no check');
    assert.ok(s1.redispatched >= 2, JSON.stringify(s1));
  });

  test('with diagnostics ports, a server is in rotation only while its /readyz answers 200', async (t) => {
    if (!havePeer(t, 'HAProxy', [BINARIES.haproxy()])) return;
    const ready = [true, true];
    const diag = (i: number) =>
      listen(
        createHttpServer((req, res) => {
          res.statusCode = req.url === '/readyz' && ready[i] ? 200 : 503;
          res.end(res.statusCode === 200 ? 'ready' : 'not ready: draining');
        }),
      );
    const backends = [
      { name: 'a', address: `127.0.0.1:${await named('a')}`, diagPort: await diag(0) },
      { name: 'b', address: `127.0.0.1:${await named('b')}`, diagPort: await diag(1) },
    ];
    const lb = await startHaproxy({ servers: backends });
    t.after(() => lb.stop());
    await lb.waitUp(['a', 'b']);
    ready[1] = false;
    const down = await lb.waitUp(['a'], { timeoutMs: 10_000 });
    assert.equal(down.find((s) => s.name === 'b')!.check, 'L7STS');
    for (let n = 0; n < 4; n++) assert.equal(await ask(lb.port), 'a');
    ready[1] = true;
    await lb.waitUp(['a', 'b'], { timeoutMs: 10_000 });
  });
});
