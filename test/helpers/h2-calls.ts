// Raw calls on a kport server's port as an attacker makes them (node:http2 and node:tls, one call at a
// time), for the network-mode tests of connections, limits and certificates.
import { X509Certificate } from 'node:crypto';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { type HandJoined, joinByHand, type TestServer } from './network.ts';

export type Agent = HandJoined & { notAfter: number };

export const CLUSTER_KEY = '/resources/kube_cluster/none';
export async function joinAgent(server: TestServer, ca: string): Promise<Agent> {
  const issued = await joinByHand(server, ca, { hostname: 'limits', group: 'g' });
  return { ...issued, notAfter: Date.parse(new X509Certificate(issued.cert).validTo) };
}

/** One POST on a node:http2 session: its status and JSON body, or 'closed' when the connection went first. */
export function post(
  session: ClientHttp2Session,
  path: string,
  body: unknown,
): Promise<{ status: number | 'closed'; body?: { error?: { code: string; message: string } } }> {
  return new Promise((resolve) => {
    if (session.closed || session.destroyed) return resolve({ status: 'closed' });
    let stream;
    try {
      stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
    } catch {
      return resolve({ status: 'closed' });
    }
    let status: number | 'closed' = 'closed';
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => resolve({ status: 'closed' }));
    stream.on('close', () => {
      if (status === 'closed') return resolve({ status });
      try {
        resolve({ status, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      } catch {
        resolve({ status, body: {} });
      }
    });
    stream.end(JSON.stringify(body));
  });
}

export function h2(server: TestServer, creds: { ca: string; cert?: string; key?: string }): ClientHttp2Session {
  const session = h2connect(`https://127.0.0.1:${server.port}`, creds);
  session.on('error', () => {});
  return session;
}

/** A TLS connection without a client certificate, held open: whether the server let it stay. */
export async function strangerSocket(port: number): Promise<TLSSocket> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => resolve());
  });
  return socket;
}
