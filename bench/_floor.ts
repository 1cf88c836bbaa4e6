// The floor: the thinnest possible Node HTTP/2 -> HTTP/2 proxy, same TLS setup as kport's.
import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { connect, createSecureServer, constants } from 'node:http2';
import { join } from 'node:path';
import { startKubeApiserver } from '../test/peers/kube.ts';
import { tempDir } from '../test/peers/process.ts';
import { createCA } from '../src/kube/pki.ts';
const api = await startKubeApiserver();
const home = tempDir('floor');
const ca = await createCA('floor CA');
const serving = await ca.issue({ commonName: 'floor', dnsNames: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
const client = await ca.issue({ commonName: 'c', usage: 'client' });
const up = connect(api.server, { rejectUnauthorized: false });
const server = createSecureServer({ cert: serving.cert, key: serving.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true, allowHTTP1: true });
server.on('stream', (stream, headers) => {
  const u = up.request({ ':method': 'GET', ':path': headers[':path']!.slice(2), authorization: `Bearer ${api.admin.token}`, accept: String(headers.accept ?? '') });
  u.on('response', (h) => { const out: any = {}; for (const [k, v] of Object.entries(h)) if (!k.startsWith(':')) out[k] = v; out[':status'] = h[':status']; stream.respond(out); u.pipe(stream); });
  stream.on('error', () => {}); u.on('error', () => {});
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as any).port;
const f = (n: string, t: string) => { writeFileSync(join(home, n), t); return join(home, n); };
for (let i = 0; i < 2; i++) {
  console.log('floor', execFileSync(process.env.H2!, ['-url', `https://127.0.0.1:${port}/x/api/v1/namespaces/default`, '-ca', f('ca', ca.cert), '-cert', f('cert', client.cert), '-key', f('key', client.key), '-n', '1000', '-c', '32', '-d', '5s'], { encoding: 'utf8' }).trim());
  console.log('direct', execFileSync(process.env.H2!, ['-url', `${api.server}/api/v1/namespaces/default`, '-ca', f('apica', api.caPem), '-token', api.admin.token, '-n', '1000', '-c', '32', '-d', '5s'], { encoding: 'utf8' }).trim());
}
server.close(); up.close(); await api.stop();
