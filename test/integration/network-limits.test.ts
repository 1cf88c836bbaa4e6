// Network mode under attack, the connection layer (issue 18): a real `kport server start` process,
// and this test process as the attacker over real TLS (node:tls, node:http2 and an HTTP/2 peer
// written frame by frame that ignores the server's SETTINGS).
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { raceTimer, tempDir, waitFor } from '../peers/process.ts';
import { CLUSTER_KEY, h2, joinAgent, post, strangerSocket } from '../helpers/h2-calls.ts';
import { pinnedCa, startServer, type TestServer } from '../helpers/network.ts';
import { RawH2 } from '../helpers/h2-raw.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';
import { joinServer } from '../../src/join/network-identity.ts';

/** The server's 5 s for a connection that sends nothing and 10 s for a join body, scaled down so the tests that wait for them take seconds. */
const SILENT_MS = 2000;
const JOIN_BODY_MS = 5000;

describe('network mode under attack: connections, streams, bodies, joins, TLS', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let ca: string;

  before(async () => {
    server = await startServer({ timeouts: { silentMs: SILENT_MS } });
    ca = await pinnedCa(server);
  });
  after(async () => {
    await server?.stop('SIGKILL');
  });

  test('a join body over 16 KiB is refused with 413, and a never-ending one is cut off early', async () => {
    const session = h2(server, { ca });
    try {
      const big = await post(session, '/v1/join', { token: 'x'.repeat(64 * 1024) });
      assert.equal(big.status, 413);
      assert.equal(big.body?.error?.code, 'too_large');
      assert.match(big.body?.error?.message ?? '', /at most 16384 bytes/);
    } finally {
      session.close();
    }
    // A connection of its own: the refused body above may have used up the first one's HTTP/2
    // connection window (a loaded machine sends all 64 KiB before the server answers).
    const fresh = h2(server, { ca });
    try {
      const stream = fresh.request({ ':method': 'POST', ':path': '/v1/join', 'content-type': 'application/json' });
      stream.on('error', () => {});
      let status = 0;
      let sent = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      while (!status && !stream.closed && sent < 8 << 20) {
        sent += chunk.length;
        if (!stream.write(chunk)) await Promise.race([new Promise((r) => stream.once('drain', r)), raceTimer(2000)]);
      }
      assert.equal(status, 413);
      // The server answered without reading the 1 MiB it used to read first.
      assert.ok(sent < 512 * 1024, `the server answered after ${sent} bytes`);
      await waitFor('the server to end the stream', async () => stream.closed || undefined, { timeoutMs: 10_000 });
    } finally {
      fresh.close();
    }
  });

  test('a connection without a host certificate gets 8 streams whatever it asks; an agent gets its own', async () => {
    const agent = await joinAgent(server, ca);
    for (const who of ['stranger', 'agent'] as const) {
      const peer = await RawH2.open(server.port, who === 'agent' ? { cert: agent.cert, key: agent.key } : {});
      try {
        // 40 join streams in one go, each with a body that never ends.
        for (let i = 0; i < 40; i++) {
          const id = 1 + 2 * i;
          peer.post(id, who === 'agent' ? '/v1/backend' : '/v1/join');
          peer.data(id, Buffer.from('{"token":'));
        }
        // Until the server has refused all it will (a loaded machine may take a while), or 10 s.
        const refusedNow = () => [...peer.resets()].filter(([, code]) => code === 7).length;
        for (let waited = 0; waited < (who === 'agent' ? 1500 : 10_000) && refusedNow() < 32; waited += 100) await sleep(100);
        const refused = refusedNow();
        if (who === 'stranger') assert.ok(40 - refused <= 8, `${40 - refused} of 40 streams stayed open on a connection without a certificate`);
        else assert.equal(refused, 0, "an agent connection is not held to the strangers' limit");
      } finally {
        peer.close();
      }
    }
  });

  test('at most 32 connections without a host certificate from one address; an agent from the same address is still served', async () => {
    const agent = await joinAgent(server, ca);
    await sleep(500);
    const sockets = await Promise.all(Array.from({ length: 40 }, () => strangerSocket(server.port)));
    try {
      const stillOpen = () => sockets.filter((s) => !s.destroyed && !s.closed);
      for (let waited = 0; waited < 10_000 && stillOpen().length > 32; waited += 100) await sleep(100);
      await sleep(500);
      const open = stillOpen();
      assert.ok(open.length <= 32, `${open.length} of 40 stayed open`);
      assert.ok(open.length >= 16, `the first ones stay open (${open.length})`);
      const session = h2(server, { ca: agent.ca, cert: agent.cert, key: agent.key });
      const res = await post(session, '/v1/backend', { op: 'get', key: CLUSTER_KEY });
      session.close();
      assert.equal(res.status, 200, 'the agent is served while strangers hold their share');
    } finally {
      for (const s of sockets) s.destroy();
    }
    // Their share is given back when they leave.
    await waitFor(
      'a stranger to be let in again',
      async () => {
        const s = await strangerSocket(server.port);
        await sleep(300);
        const ok = !s.destroyed && !s.closed;
        s.destroy();
        return ok || undefined;
      },
      { timeoutMs: 10_000 },
    );
  });

  test('at most 64 TLS handshakes under way from one address, and a silent one is dropped within seconds', async () => {
    // TCP connections that never send a ClientHello.
    const sockets = await Promise.all(
      Array.from(
        { length: 80 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = netConnect({ host: '127.0.0.1', port: server.port }, () => resolve(socket));
            socket.on('error', () => {});
            socket.once('close', () => resolve(socket));
          }),
      ),
    );
    try {
      const stillOpen = () => sockets.filter((s) => !s.destroyed && !s.closed);
      for (let waited = 0; waited < 5000 && stillOpen().length > 64; waited += 100) await sleep(100);
      assert.ok(stillOpen().length <= 64, `${stillOpen().length} of 80 silent connections stayed open`);
      assert.ok(stillOpen().length > 0, 'the first ones are let in');
      await waitFor('the silent connections to be dropped', async () => stillOpen().length === 0 || undefined, { timeoutMs: 30_000 });
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  test('join bodies held at once are bounded across addresses (503 past 8 MiB); an agent is still served', async (t) => {
    // Many addresses each within the join rate: here three, with the rate lifted to stand for the rest.
    const server = await startServer({ timeouts: { joinBodyMs: JOIN_BODY_MS }, auth: { join_rate_limit: { average: 1_000_000, burst: 1_000_000 } } });
    const ca = await pinnedCa(server);
    const agent = await joinAgent(server, ca);
    // Three addresses (all of 127/8 is this machine), each at its limit: 32 connections of 8 streams
    // of join bodies 16,000 bytes long that never end.
    const sessions: ClientHttp2Session[] = [];
    const statuses: Array<Promise<number | 'none'>> = [];
    let turnedAway = 0;
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      for (let c = 0; c < 32; c++) {
        const session = h2connect(`https://127.0.0.1:${server.port}`, { ca, localAddress: from } as Parameters<typeof h2connect>[1]);
        session.on('error', () => {});
        sessions.push(session);
        for (let s = 0; s < 8; s++) {
          const stream = session.request({ ':method': 'POST', ':path': '/v1/join', 'content-type': 'application/json' });
          stream.on('error', () => {});
          stream.write(Buffer.alloc(16_000, 0x20));
          statuses.push(
            new Promise((resolve) => {
              stream.once('response', (h) => {
                if (Number(h[':status']) === 503) turnedAway++;
                resolve(Number(h[':status']));
              });
              stream.once('close', () => resolve('none'));
              setTimeout(() => resolve('none'), 4 * JOIN_BODY_MS).unref();
            }),
          );
        }
      }
    }
    try {
      const agentSession = h2(server, { ca: agent.ca, cert: agent.cert, key: agent.key });
      // The strangers hold the budget once the server turns their bodies away as busy.
      await waitFor('the join bodies to fill the budget', async () => turnedAway > 0 || undefined, { timeoutMs: JOIN_BODY_MS });
      const served = await post(agentSession, '/v1/backend', { op: 'get', key: CLUSTER_KEY });
      agentSession.close();
      assert.equal(served.status, 200, 'the agent is served while strangers hold the join budget');
      const seen = await Promise.all(statuses);
      const busy = seen.filter((s) => s === 503).length;
      const held = seen.filter((s) => s === 'none').length;
      t.diagnostic(`${seen.length} join bodies: ${busy} refused 503, ${held} held, ${seen.length - busy - held} answered otherwise`);
      assert.ok(
        busy > 0,
        `some join bodies are refused for the budget: ${JSON.stringify(
          Object.groupBy(seen, (s) => String(s)),
          (_k, v) => (Array.isArray(v) ? v.length : v),
        )}`,
      );
      assert.ok(held * 16_000 <= 8 << 20, `${held} bodies of 16,000 bytes held at once`);
    } finally {
      for (const s of sessions) s.destroy();
      await server.stop('SIGKILL');
    }
  });

  test('join attempts from one address are rate limited (429, with when to try again); agents are not', async () => {
    const fresh = await startServer();
    try {
      const freshCa = await pinnedCa(fresh);
      const agent = await joinAgent(fresh, freshCa);
      const anonymous = new ServerClient({ host: '127.0.0.1', port: fresh.port }, { ca: freshCa });
      const keys = await generateKeys();
      const csr = await createCsr(keys, 'guess');
      const start = Date.now();
      const outcomes: Array<{ status: number; message: string }> = [];
      for (let i = 0; i < 60; i++) {
        const err = await anonymous.rawCall('/v1/join', { token: `guess-${i}`, roles: ['discovery'], hostname: 'guess', csr, discovery_group: 'g' }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof ApiError, String(err));
        outcomes.push({ status: err.status, message: err.message });
      }
      const seconds = (Date.now() - start) / 1000;
      anonymous.close();
      const answered = outcomes.filter((o) => o.status !== 429);
      assert.ok(answered.length <= 30 + Math.ceil(seconds) + 1, `${answered.length} guesses answered in ${seconds.toFixed(1)} s`);
      const limited = outcomes.find((o) => o.status === 429);
      assert.ok(limited, 'some guesses are refused for their rate');
      assert.match(limited.message, /^too many join attempts from 127\.0\.0\.1: try again in \d+ s$/);
      const session = h2(fresh, { ca: agent.ca, cert: agent.cert, key: agent.key });
      const results = await Promise.all(Array.from({ length: 40 }, () => post(session, '/v1/backend', { op: 'get', key: CLUSTER_KEY })));
      session.close();
      assert.deepEqual([...new Set(results.map((r) => r.status))], [200], "an agent's calls are not rate limited");
      // An agent joining from the limited address waits its turn rather than giving up.
      const secret = await fresh.token('discovery');
      const waited = Date.now();
      const joined = await joinServer({
        dataDir: tempDir('limits-agent'),
        server: { host: '127.0.0.1', port: fresh.port },
        pins: [fresh.pin],
        roles: ['discovery'],
        discoveryGroup: 'g',
        token: () => secret,
        signal: AbortSignal.timeout(60_000),
        warn: () => {},
      });
      joined.client.close();
      assert.ok(joined.identity.host_id, `joined after ${Date.now() - waited} ms`);
    } finally {
      await fresh.stop('SIGKILL');
    }
  });

  test('TLS 1.2 offers only ECDHE with AES-GCM or ChaCha20, and refuses renegotiation', async () => {
    const handshake = (opts: { ciphers?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }) =>
      new Promise<string>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...opts });
        socket.once('secureConnect', () => {
          resolve(socket.getCipher().standardName);
          socket.destroy();
        });
        socket.once('error', (err) => resolve(`error: ${err.message}`));
      });
    for (const cbc of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384']) {
      assert.match(await handshake({ ciphers: cbc, maxVersion: 'TLSv1.2' }), /^error: /, `${cbc} is refused`);
    }
    assert.equal(await handshake({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }), 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    assert.equal(await handshake({ ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305', maxVersion: 'TLSv1.2' }), 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256');
    assert.match(await handshake({}), /^TLS_/, 'TLS 1.3 as before');
    // openssl, as an auditor would check it, when the machine has it.
    const openssl = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA'], {
      input: '',
      reject: false,
      timeout: 20_000,
    }).catch(() => undefined);
    if (openssl && !/ENOENT/.test(String(openssl.stderr))) assert.notEqual(openssl.exitCode, 0, `openssl s_client with a CBC-SHA1 suite: ${openssl.stdout}`);

    // A client-initiated renegotiation over TLS 1.2.
    const socket = tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false, maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const outcome = await new Promise<string>((resolve) => {
      const ok = socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ? `refused: ${err.message}` : 'renegotiated'));
      if (!ok) resolve('refused by the client');
      socket.once('close', () => resolve('closed'));
      // A renegotiation the server answered only completes when data flows.
      socket.write('GET /v1/ping HTTP/1.1\r\nHost: localhost\r\n\r\n');
    });
    socket.destroy();
    assert.notEqual(outcome, 'renegotiated');
  });

  test('kport server start refuses a seal.key that others can read, and says to chmod 600 it', async () => {
    const own = await startServer();
    await own.stop();
    const path = join(own.dir, 'data', 'server', 'seal.key');
    chmodSync(path, 0o644);
    const proc = own.kport(['server', 'start']);
    const started = await Promise.race([proc, raceTimer(30_000, 'still running' as const)]);
    proc.kill('SIGKILL');
    assert.notEqual(started, 'still running', 'the server refused to start');
    const run = started as { exitCode?: number; stderr: string };
    assert.equal(run.exitCode, 1, run.stderr);
    assert.ok(run.stderr.includes(`chmod 600 ${path}`), run.stderr);
    assert.match(run.stderr, /mode 0644/);
    chmodSync(path, 0o600);
    await own.start();
    await own.stop('SIGKILL');
  });
});
