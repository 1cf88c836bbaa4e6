import { join } from 'node:path';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser } from '../../src/people/users.ts';
import { startServer } from '../helpers/network.ts';
import { keyAndCsr, post, totpAt } from '../helpers/person.ts';
const server = await startServer();
const store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
const P = 'correct horse battery staple';
const people: Array<{ name: string; secret: string; at: number }> = [];
for (let i = 0; i < 20; i++) {
  const { invite } = await addUser(store, { name: `u${i}`, roles: ['access'] }, new Date());
  const b = await post(server.port, '/v1/login/invite/begin', { invite });
  const { csr } = await keyAndCsr('x');
  const at = Date.now();
  await post(server.port, '/v1/login/invite/finish', { invite, password: P, totp_code: totpAt(b.body.totp_secret, at), csr });
  people.push({ name: `u${i}`, secret: b.body.totp_secret, at });
}
const times: number[] = [];
for (const p of people) {
  const t0 = performance.now();
  const { csr } = await keyAndCsr(p.name);
  const r = await post(server.port, '/v1/login/local', { user: p.name, password: P, totp_code: totpAt(p.secret, p.at + 30_000), csr }, { localAddress: '127.0.0.5' });
  times.push(performance.now() - t0);
  if (r.status !== 200) console.log(r.status, r.body);
}
times.sort((a, b) => a - b);
console.log(`local login (key + CSR + new TLS connection + /v1/login/local with scrypt + signing), 20 runs: median ${times[10]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)}, max ${times[19]!.toFixed(1)}`);
await store.close();
await server.stop();
