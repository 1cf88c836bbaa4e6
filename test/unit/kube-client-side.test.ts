import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createH2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { abortAfter, compatClient, StreamClient, type ClientSide } from '../../src/kube/client-side.ts';
import { ChunkRelay } from '../../src/kube/relay.ts';

// The forwarding engine's one client adapter (src/kube/client-side.ts). The local proxy's copy and
// the server's had drifted: asked to fail once the answer had begun, the local proxy's HTTP/2 one
// did nothing (the response stayed open, a watch hung) and its HTTP/1.1 one wrote a second head,
// which throws. The server's broke the response, which every client reads as a failure; kept.

/** An HTTP/2 server whose every stream is handed to `serve` as a StreamClient; and the status and ending a client sees. */
async function overHttp2(serve: (client: ClientSide) => void): Promise<{ status: number; body: string; rstCode: number; ended: boolean }> {
  const server = createH2Server();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => serve(new StreamClient(stream, headers)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    return await new Promise((resolve) => {
      const req = session.request({ ':path': '/api/v1/pods?watch=true' });
      let status = 0;
      let body = '';
      let ended = false;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => (ended = true));
      req.on('error', () => {});
      req.on('close', () => resolve({ status, body, rstCode: req.rstCode ?? 0, ended: ended && req.rstCode === 0 }));
    });
  } finally {
    session.close();
    server.close();
  }
}

/** The same over HTTP/1.1, with compatClient: whether the response came whole or broke. */
async function overHttp1(serve: (client: ClientSide) => void): Promise<{ status: number; body: string; complete: boolean; thrown?: unknown }> {
  let thrown: unknown;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    try {
      serve(compatClient(req, res));
    } catch (err) {
      thrown = err;
      res.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const got = await new Promise<{ status: number; body: string; complete: boolean }>((resolve) => {
      const req = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/api/v1/pods?watch=true', agent: false });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('error', () => {});
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }));
      });
      req.on('error', () => resolve({ status: 0, body: '', complete: false }));
      req.end();
    });
    return { ...got, thrown };
  } finally {
    server.close();
  }
}

const WATCH_HEAD = { 'content-type': 'application/json' };

test("HTTP/2: a failure before the answer is kport's status answer", async () => {
  const seen = await overHttp2((client) => client.fail(403, 'kube_cluster "x" not found'));
  assert.equal(seen.status, 403);
  assert.equal(seen.body, 'kube_cluster "x" not found\n');
  assert.equal(seen.ended, true);
});

test('HTTP/2: a failure once the answer began breaks the stream (a reset), so the client does not read an end or wait forever', async () => {
  const seen = await overHttp2((client) => {
    client.respond(200, { ...WATCH_HEAD })?.write('{"type":"ADDED"}\n');
    assert.equal(client.headersSent(), true);
    client.fail(502, 'the cluster went away');
  });
  assert.equal(seen.status, 200);
  assert.notEqual(seen.rstCode, 0, 'the stream is reset, not ended');
  assert.equal(seen.ended, false);
  assert.doesNotMatch(seen.body, /went away/);
});

test('HTTP/2: answering a stream the client already reset does nothing (no throw), and it reads as gone', async () => {
  let after: { gone: boolean; sink: unknown } | undefined;
  const server = createH2Server();
  const closed = new Promise<void>((resolve) => {
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const client = new StreamClient(stream, headers);
      client.onClose(() => {
        client.fail(502, 'too late');
        after = { gone: client.gone(), sink: client.respond(200, {}) };
        resolve();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const req = session.request({ ':path': '/' });
  req.on('error', () => {});
  req.on('ready', () => req.close(8 /* NGHTTP2_CANCEL */));
  await closed;
  session.close();
  server.close();
  assert.deepEqual(after, { gone: true, sink: undefined });
});

test("HTTP/1.1: a failure before the answer is kport's status answer", async () => {
  const seen = await overHttp1((client) => client.fail(403, 'kube_cluster "x" not found'));
  assert.deepEqual(seen, { status: 403, body: 'kube_cluster "x" not found\n', complete: true, thrown: undefined });
});

test('HTTP/1.1: a failure once the answer began cuts the response instead of throwing on a second head', async () => {
  const seen = await overHttp1((client) => {
    client.respond(200, { ...WATCH_HEAD })?.write('{"type":"ADDED"}\n');
    client.fail(502, 'the cluster went away');
  });
  assert.equal(seen.thrown, undefined);
  assert.equal(seen.status, 200);
  assert.equal(seen.complete, false, 'the response is cut, not complete');
});

test('an aborted response reads as gone on both adapters', async () => {
  const states: boolean[] = [];
  await overHttp2((client) => {
    client.respond(200, {});
    client.abort();
    states.push(client.gone());
  });
  await overHttp1((client) => {
    client.respond(200, {});
    client.abort();
    states.push(client.gone());
  });
  assert.deepEqual(states, [true, true]);
});

test("abortAfter: the last words reach the client before the break (a followed log's last line, then a reset)", async () => {
  const seen = await overHttp2((client) => {
    const sink = client.respond(200, { 'content-type': 'text/plain' })!;
    const relay = new ChunkRelay(sink, { pause: () => {}, resume: () => {} });
    relay.push(Buffer.from('line 1\n'));
    abortAfter(client, relay, Buffer.from('kport: the server ended the request\n'));
  });
  assert.equal(seen.body, 'line 1\nkport: the server ended the request\n');
  assert.notEqual(seen.rstCode, 0);
  assert.equal(seen.ended, false);
});
