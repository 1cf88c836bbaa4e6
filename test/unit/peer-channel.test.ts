// The peer channel in one process (src/server/peer/peer-listener.ts, peer-client.ts, peer-splice.ts):
// server B's listener with an agent's tunnel (a loopback tunnel whose agent side is written here),
// server A's client, both with peer certificates from one host CA, on the in-memory store. What the
// agent receives and what A gets back are compared byte for byte, headers and trailers included.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import { createServer } from 'node:net';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { X509Certificate } from 'node:crypto';
import { certPem, createAuthority, generateKeys, issueLeaf } from '../../src/pki/certs.ts';
import { openLoopbackTunnel } from '../../src/reversetunnel/loopback-tunnel.ts';
import { TunnelRegistry } from '../../src/reversetunnel/tunnel-registry.ts';
import type { Authority } from '../../src/server/auth/authorities.ts';
import { TLS_POLICY } from '../../src/server/api/tls-policy.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';
import { PeerClients } from '../../src/server/peer/peer-client.ts';
import { PeerDirectory } from '../../src/server/peer/peer-directory.ts';
import { PEER_ROLE, PeerIdentity, peerOf } from '../../src/server/peer/peer-identity.ts';
import { serverKey, tunnelKey } from '../../src/server/peer/peer-keys.ts';
import { PEER_HOST_HEADER, PeerListener } from '../../src/server/peer/peer-listener.ts';
import { waitFor } from '../peers/process.ts';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers?: IncomingHttpHeaders;
  rstCode?: number;
}

function collect(stream: ClientHttp2Stream): Promise<Answer> {
  return new Promise((resolve) => {
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => ((status = Number(h[':status'])), (headers = h)));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('close', () => resolve({ status, headers, body: Buffer.concat(chunks), ...(trailers && { trailers }), rstCode: stream.rstCode }));
  });
}

/** The agent's side: what it saw of each stream, and answers by path. */
function agent(seen: IncomingHttpHeaders[]) {
  return (session: ServerHttp2Session) =>
    session.on('stream', (stream, headers) => {
      seen.push(headers);
      if (headers[':method'] === 'CONNECT') {
        stream.respond({ ':status': 200 });
        stream.pipe(stream);
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 207, 'x-agent': 'yes', 'set-cookie': ['a=1', 'b=2'] }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'x-trailer': 'done' }));
        stream.end(`got ${Buffer.concat(chunks).length} bytes on ${headers[':path']}`);
      });
    });
}

describe('the peer channel: A -> B -> the agent', () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const tunnels = new TunnelRegistry();
  const seen: IncomingHttpHeaders[] = [];
  let ca: Authority;
  let idA: PeerIdentity;
  let idB: PeerIdentity;
  let listener: PeerListener;
  let clients: PeerClients;
  let dirA: PeerDirectory;
  let dirB: PeerDirectory;
  let closeTunnel: () => void;
  let address: string;

  before(async () => {
    const made = await createAuthority('kport host CA', 86_400_000);
    ca = { ...made, name: 'host', certPem: certPem(made.cert) };
    closeTunnel = openLoopbackTunnel(tunnels, 'agent-1', agent(seen));
    // A's certificate renews every second (half of 2 s): streams keep working across renewals.
    idA = new PeerIdentity(ca, 'server-a', 2000);
    idB = new PeerIdentity(ca, 'server-b', 2000);
    await Promise.all([idA.start(), idB.start()]);
    dirA = new PeerDirectory(backend, hub, 'server-a');
    dirB = new PeerDirectory(backend, hub, 'server-b');
    listener = new PeerListener({ identity: idB, hostCaPem: ca.certPem, directory: dirB, tunnels, tls: TLS_POLICY, now: Date.now, log: () => {} });
    const bound = await listener.listen('127.0.0.1', 0);
    address = `127.0.0.1:${bound.port}`;
    const record = (id: string, peer_addr: string) => JSON.stringify({ server_id: id, peer_addr, started: new Date().toISOString() });
    await backend.put(serverKey('server-a'), record('server-a', '127.0.0.1:1'));
    await backend.put(serverKey('server-b'), record('server-b', address));
    await backend.put(tunnelKey('agent-1', 'server-b'), '{}');
    clients = new PeerClients(idA, ca.certPem, dirA, TLS_POLICY);
    await Promise.all([dirA.ready, dirB.ready]);
    await waitFor('the directories', async () => clients.holders('agent-1') > 0 && dirB.server('server-a') !== undefined, { timeoutMs: 5000 });
  });
  after(async () => {
    clients.close();
    await listener.close();
    idA.close();
    idB.close();
    dirA.close();
    dirB.close();
    hub.close();
    closeTunnel();
  });

  test("a request goes through as A sent it, less the routing header; the agent's status, headers, body and trailers come back", async () => {
    const stream = clients.open(
      'agent-1',
      [':method', 'POST', ':path', '/upload', ':authority', 'kport-agent', 'x-identity', 'signed', 'x-twice', '1', 'x-twice', '2'],
      {},
    )!;
    stream.end(Buffer.alloc(300_000, 7));
    const answer = await collect(stream);
    assert.equal(answer.status, 207);
    assert.equal(answer.body.toString(), 'got 300000 bytes on /upload');
    assert.equal(answer.headers['x-agent'], 'yes');
    assert.deepEqual(answer.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(answer.trailers?.['x-trailer'], 'done');
    assert.equal(answer.rstCode, constants.NGHTTP2_NO_ERROR);
    const at = seen.at(-1)!;
    assert.equal(at[PEER_HOST_HEADER], undefined, 'the routing header stops at B');
    assert.equal(at['x-identity'], 'signed');
    assert.equal(at['x-twice'], '1, 2');
    assert.equal(at[':authority'], 'kport-agent');
  });

  // A CONNECT after two streams once hung: B ended a stream without trailers by RST_STREAM(NO_ERROR).
  test('a GET ended with its headers, then a CONNECT carrying bytes both ways (exec, port-forward), ended', { timeout: 10_000 }, async () => {
    const get = await collect(clients.open('agent-1', { ':method': 'GET', ':path': '/api', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(get.body.toString(), 'got 0 bytes on /api');
    const connect = clients.open('agent-1', { ':method': 'CONNECT', ':authority': 'kport-agent' })!;
    const sent = Buffer.alloc(200_000, 3);
    connect.end(sent);
    const tunnelled = await collect(connect);
    assert.equal(tunnelled.status, 200);
    assert.ok(tunnelled.body.equals(sent), `${tunnelled.body.length} of ${sent.length} bytes back`);
  });

  test("streams keep working across both servers' certificate renewals", async () => {
    const first = idA.current.cert;
    await waitFor('a renewal', async () => idA.current.cert !== first && idB.current.cert !== first, { timeoutMs: 5000 });
    const answer = await collect(clients.open('agent-1', { ':method': 'GET', ':path': '/after', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(answer.status, 207);
  });

  test('an agent with no tunnel at B is refused before anything is sent (REFUSED_STREAM): A moves to its next candidate', async () => {
    await backend.put(tunnelKey('agent-gone', 'server-b'), '{}');
    await waitFor('the record', async () => clients.holders('agent-gone') > 0, { timeoutMs: 5000 });
    const answer = await collect(clients.open('agent-gone', { ':method': 'GET', ':path': '/x', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(answer.status, 0);
    assert.equal(answer.rstCode, constants.NGHTTP2_REFUSED_STREAM);
  });

  test("A trusts only the server it dialled: another server's address taken over by B is refused, and nothing reaches the agent", async () => {
    await backend.put(serverKey('server-c'), JSON.stringify({ server_id: 'server-c', peer_addr: address, started: new Date().toISOString() }));
    await backend.put(tunnelKey('agent-1', 'server-c'), '{}');
    await backend.delete(tunnelKey('agent-1', 'server-b'));
    await waitFor('only server-c holds agent-1', async () => dirA.serversFor('agent-1').join() === 'server-c' || undefined, { timeoutMs: 5000 });
    const before = seen.length;
    const answer = await collect(clients.open('agent-1', { ':method': 'GET', ':path': '/c', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(answer.status, 0);
    assert.equal(seen.length, before);
    await backend.put(tunnelKey('agent-1', 'server-b'), '{}');
    await backend.delete(tunnelKey('agent-1', 'server-c'));
    await waitFor('back on server-b', async () => dirA.serversFor('agent-1').join() === 'server-b' || undefined, { timeoutMs: 5000 });
  });

  test('a peer that died (its port refuses connections) fails the stream at once with no answer, as a lost tunnel does: the forwarding engine tries its next candidate', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as { port: number }).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    await backend.put(
      serverKey('server-dead'),
      JSON.stringify({ server_id: 'server-dead', peer_addr: `127.0.0.1:${port}`, started: new Date().toISOString() }),
    );
    await backend.put(tunnelKey('agent-dead', 'server-dead'), '{}');
    await waitFor('the dead server listed', async () => clients.holders('agent-dead') > 0, { timeoutMs: 5000 });
    const started = performance.now();
    const answer = await collect(clients.open('agent-dead', { ':method': 'GET', ':path': '/x', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(answer.status, 0);
    assert.ok(performance.now() - started < 1000, `closed in ${Math.round(performance.now() - started)} ms`);
  });

  test('a caller whose server record is gone is refused on its next stream, on the connection it already has', async () => {
    const ok = await collect(clients.open('agent-1', { ':method': 'GET', ':path': '/1', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(ok.status, 207);
    await backend.delete(serverKey('server-a'));
    await waitFor('B no longer sees A', async () => dirB.server('server-a') === undefined, { timeoutMs: 5000 });
    const before = seen.length;
    const refused = await collect(clients.open('agent-1', { ':method': 'GET', ':path': '/2', ':authority': 'kport-agent' }, { endStream: true })!);
    assert.equal(refused.status, 0);
    assert.equal(refused.rstCode, constants.NGHTTP2_INADEQUATE_SECURITY);
    assert.equal(seen.length, before);
  });

  test(`an agent's host certificate (the same CA, without the ${PEER_ROLE} role) is no peer's; a server's names its server id`, async () => {
    const keys = await generateKeys();
    const leaf = await issueLeaf(ca, keys.publicKey, {
      commonName: 'agent-1',
      usage: 'client',
      validForMs: 60_000,
      host: { roles: ['kube'], discovery_group: '' },
    });
    assert.equal(peerOf(Buffer.from(leaf.rawData)), `host agent-1 holds roles kube, not a server's ${PEER_ROLE} role`);
    const own = new X509Certificate(idB.current.cert);
    assert.deepEqual(peerOf(own.raw), { serverId: 'server-b', notAfter: idB.current.notAfter });
  });
});
