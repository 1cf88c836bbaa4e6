// proxy_service.proxy_protocol: on behind HAProxy's send-proxy-v2 (issue 29), with real processes: a
// `kport server start` on etcd behind HAProxy, which dials the server from its own loopback address
// (127.0.0.10), while clients reach HAProxy from 127.0.0.1, 127.0.0.2 or 127.0.0.3. Without the header
// every person and agent would be the balancer's address in the audit and for every per-source bound.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { connect as h2Connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { LIMITS } from '../../src/server/call/limits.ts';
import { invitedPerson } from '../helpers/login.ts';
import { auditEvents, joinByHand, pinnedCa } from '../helpers/network.ts';
import { SEVERAL_SERVERS_PEERS, startSeveralServers, type SeveralServers } from '../helpers/several-servers.ts';
import { havePeer, waitFor } from '../peers/process.ts';

/** A TLS connection without a certificate from `localAddress` to `port`: open once the server kept it past its handshake. */
async function stranger(port: number, localAddress: string, over?: Socket): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, localAddress, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(over && { socket: over }) });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => resolve());
  });
  return socket;
}

const open = (s: Socket) => !s.destroyed && !s.closed;

/** A TCP connection straight to `port` that sends `header` first, then (with `tls`) a TLS handshake on it. */
async function withHeader(port: number, header: Buffer | string, tls = true): Promise<Socket> {
  const raw = netConnect({ host: '127.0.0.1', port });
  raw.on('error', () => {});
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  raw.write(header);
  if (!tls) return raw;
  return stranger(port, '127.0.0.1', raw);
}

/** Resolves with how long `socket` took to close, or undefined if it is still open after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<number | undefined> {
  const start = Date.now();
  if (!open(socket)) return Promise.resolve(0);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

describe('PROXY protocol v2 from HAProxy (proxy_service.proxy_protocol: on)', { concurrency: false, timeout: 300_000 }, () => {
  let f: SeveralServers | undefined;
  const have = (t: TestContext) => havePeer(t, 'etcd and HAProxy', SEVERAL_SERVERS_PEERS());

  before(async (t) => {
    if (!have(t as never)) return;
    // One server: every connection through the LB lands on it, so its per-source counts are all there is.
    f = await startSeveralServers({ servers: 1, members: 1, proxyProtocol: true });
  });
  after(async () => {
    if (process.env.KPORT_TEST_DEBUG) for (const s of f?.servers ?? []) process.stderr.write(`--- server ${s.address}\n${s.log.slice(-5000)}\n`);
    await f?.stop();
  });

  test("a person's login through HAProxy is audited with the person's address, not the balancer's", async (t) => {
    if (!have(t)) return;
    const alice = await invitedPerson(f!.front, 'alice', ['editor']);
    const status = await alice.kport(['status']);
    assert.equal(status.exitCode, 0, String(status.stderr));
    const events = (await auditEvents(f!.front)).map((e) => e.spec as typeof e.spec & { remote_addr?: string; user?: string });
    const alices = events.filter((e) => e.user === 'alice' && e.remote_addr !== undefined);
    assert.ok(
      alices.some((e) => e.type === 'user.login'),
      `no login of alice audited: ${JSON.stringify(events.map((e) => e.type))}`,
    );
    // The kport CLI dials HAProxy from 127.0.0.1; HAProxy dials the server from 127.0.0.10.
    for (const e of alices) {
      assert.match(e.remote_addr!, /^127\.0\.0\.1:\d+$/, `${e.type} names ${e.remote_addr}`);
      assert.equal(f!.serverOf(e.remote_addr!), undefined, `${e.type} names the balancer`);
    }
  });

  test("an agent's join through HAProxy is audited with the agent's address", async (t) => {
    if (!have(t)) return;
    const joined = await joinByHand(f!.front, await pinnedCa(f!.front));
    const events = (await auditEvents(f!.front)).map((e) => e.spec as typeof e.spec & { remote_addr?: string; host_id?: string });
    const join = events.find((e) => e.type === 'agent.join' && e.host_id === joined.host_id);
    assert.ok(join, `no join of ${joined.host_id} audited: ${JSON.stringify(events.map((e) => e.type))}`);
    assert.match(join.remote_addr ?? '', /^127\.0\.0\.1:\d+$/);
  });

  test('a client named by an IPv6 address in the PROXY v2 header is audited as [address]:port', async (t) => {
    if (!have(t)) return;
    const port = f!.servers[0]!.port;
    // v2, PROXY command, TCP over IPv6: 2001:db8::5 port 40000 to ::1 port 3080.
    const addresses = Buffer.alloc(36);
    addresses[0] = 0x20;
    addresses[1] = 0x01;
    addresses[2] = 0x0d;
    addresses[3] = 0xb8;
    addresses[15] = 0x05;
    addresses[31] = 0x01;
    addresses.writeUInt16BE(40000, 32);
    addresses.writeUInt16BE(3080, 34);
    const header = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x21, 0x00, 36]), addresses]);
    const tls = await withHeader(port, header);
    const session = h2Connect(`https://127.0.0.1:${port}`, { createConnection: () => tls });
    session.on('error', () => {});
    try {
      // A join with a token that is not one: refused, and audited with the caller's address.
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/v1/join', 'content-type': 'application/json' });
        let got = 0;
        req.on('response', (h) => (got = Number(h[':status'])));
        req.resume();
        req.on('end', () => resolve(got));
        req.on('error', reject);
        req.end(JSON.stringify({ token: 'not-a-token', hostname: 'v6', csr: 'x' }));
      });
      assert.ok(status >= 400 && status < 500, `status ${status}`);
    } finally {
      session.destroy();
    }
    const named = await waitFor('the refused join audited', async () => {
      const events = (await auditEvents(f!.front)).map((e) => e.spec as typeof e.spec & { remote_addr?: string });
      const found = events.filter((e) => e.remote_addr?.includes('2001:db8'));
      return found.length > 0 ? found : undefined;
    });
    for (const e of named) assert.equal(e.remote_addr, '[2001:db8::5]:40000', e.type);
  });

  test('a connection straight to the server without a PROXY header is closed before TLS, and logged', async (t) => {
    if (!have(t)) return;
    const server = f!.servers[0]!;
    const direct = await stranger(server.port, '127.0.0.1');
    assert.equal(direct.authorized || open(direct), false, 'a connection without the header got a TLS session');
    await waitFor('the refusal in the server log', async () => /refused \d+ connection\(s\).*PROXY/.test(server.log) || undefined, { timeoutMs: 10_000 });
    // What reaches it through the balancer still goes through.
    const viaLb = await stranger(f!.lb.port, '127.0.0.1');
    await sleep(300);
    assert.ok(open(viaLb), 'a connection through HAProxy was closed');
    viaLb.destroy();
  });

  test(`the bound of ${LIMITS.unauthenticatedPerSource} connections without a certificate counts each client apart, through one balancer`, async (t) => {
    if (!have(t)) return;
    const port = f!.lb.port;
    const extra = 4;
    const flood = await Promise.all(Array.from({ length: LIMITS.unauthenticatedPerSource + extra }, () => stranger(port, '127.0.0.2')));
    const other: TLSSocket[] = [];
    try {
      const stillOpen = () => flood.filter(open);
      await waitFor('the server to close what 127.0.0.2 holds past its share', async () => stillOpen().length <= LIMITS.unauthenticatedPerSource || undefined, {
        timeoutMs: 10_000,
      });
      // A second's grace: nothing more of 127.0.0.2's is closed, and its share is full.
      await sleep(1000);
      assert.equal(stillOpen().length, LIMITS.unauthenticatedPerSource, '127.0.0.2 keeps exactly its share');
      // Another client behind the same balancer has a share of its own.
      for (let n = 0; n < extra; n++) other.push(await stranger(port, '127.0.0.3'));
      await sleep(1000);
      assert.equal(other.filter(open).length, extra, "127.0.0.3's connections were counted as 127.0.0.2's (the balancer's)");
      assert.equal(stillOpen().length, LIMITS.unauthenticatedPerSource);
    } finally {
      for (const s of [...flood, ...other]) s.destroy();
    }
  });

  test('a header that stalls, one past the size bound, and one claiming the client of an open connection are closed', async (t) => {
    if (!have(t)) return;
    const port = f!.servers[0]!.port;
    const signature = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
    // The signature and no more: closed once the header's time is up (silentMs, 5 s), not held.
    const stalled = await withHeader(port, signature, false);
    // A v2 header declaring 64 KiB of addresses: closed on its first 16 bytes.
    const huge = await withHeader(port, Buffer.concat([signature, Buffer.from([0x21, 0x11, 0xff, 0xff])]), false);
    const hugeAfter = await closedWithin(huge, 2000);
    assert.ok(hugeAfter !== undefined, 'a 64 KiB header was waited for');
    const stalledAfter = await closedWithin(stalled, LIMITS.silentMs + 3000);
    assert.ok(stalledAfter !== undefined, `a stalled header held its connection past ${LIMITS.silentMs + 3000} ms`);
    // v1's text line, and two connections claiming the same client address and port.
    const line = (port: number) => `PROXY TCP4 198.51.100.9 127.0.0.1 ${port} 3080\r\n`;
    const first = await withHeader(port, line(40000));
    const same = await withHeader(port, line(40000));
    const next = await withHeader(port, line(40001));
    try {
      await sleep(500);
      assert.deepEqual([first, same, next].map(open), [true, false, true]);
    } finally {
      for (const s of [stalled, huge, first, same, next]) s.destroy();
    }
  });
});
