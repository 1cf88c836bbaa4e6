// Network mode under attack, certificates that expire (issue 18): a real `kport server start` process
// and this test process as the attacker over real TLS; every call checks the expiry itself.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { raceTimer, tempDir } from '../peers/process.ts';
import { CLUSTER_KEY, h2, joinAgent, post } from '../helpers/h2-calls.ts';
import { pinnedCa, startServer } from '../helpers/network.ts';
import { createCsr, generateKeys, importKeyPem, keyPem } from '../../src/pki/certs.ts';
import { fetchPinnedCA, ServerClient } from '../../src/client/server-client.ts';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { loadAuthorities } from '../../src/server/auth/authorities.ts';
import { ServerAudit } from '../../src/server/events/audit.ts';
import { KportServer } from '../../src/server/api/server.ts';
import { addToken } from '../../src/tokens/tokens.ts';

describe('network mode under attack: certificates that expire', { concurrency: false, timeout: 300_000 }, () => {
  test('a certificate that expires on a busy connection: later calls and its renewal are refused, and the connection is closed', async (t) => {
    const short = await startServer({ hostCertTtl: '5s' });
    try {
      const shortCa = await pinnedCa(short);
      const agent = await joinAgent(short, shortCa);
      const session = h2(short, { ca: agent.ca, cert: agent.cert, key: agent.key });
      let closedAt: number | undefined;
      session.on('close', () => (closedAt = Date.now()));
      // Busy: a call every 200 ms, so no idle timeout is what ends it; past the expiry, a renewal too.
      const calls: Array<{ at: number; path: string; status: number | 'closed'; code?: string }> = [];
      const csr = await createCsr(await importKeyPem(agent.key), agent.host_id);
      while (closedAt === undefined && Date.now() < agent.notAfter + 10_000) {
        for (const [path, body] of [
          ['/v1/backend', { op: 'get', key: CLUSTER_KEY }],
          ...(Date.now() >= agent.notAfter ? [['/v1/renew', { csr }]] : []),
        ] as const) {
          const at = Date.now();
          const res = await post(session, path, body);
          calls.push({ at, path, status: res.status, code: res.body?.error?.code });
        }
        await sleep(200);
      }
      const before = calls.filter((c) => c.at < agent.notAfter - 1000);
      assert.ok(before.length > 0 && before.every((c) => c.status === 200), `calls before the expiry succeed: ${JSON.stringify(before)}`);
      const late = calls.filter((c) => c.at >= agent.notAfter);
      assert.deepEqual(
        late.filter((c) => c.status === 200),
        [],
        'no call after the expiry is answered',
      );
      for (const c of late.filter((c) => c.status !== 'closed')) assert.equal(c.code, 'cert_expired', JSON.stringify(c));
      t.diagnostic(
        `${calls.length} calls; after the expiry: ${late.map((c) => `${c.path} ${c.status}${c.code ? ` ${c.code}` : ''} at +${c.at - agent.notAfter} ms`).join(', ') || 'none'}; closed at +${closedAt === undefined ? '?' : closedAt - agent.notAfter} ms`,
      );
      assert.ok(
        closedAt !== undefined && closedAt <= agent.notAfter + 5000,
        `the server closed the connection at the expiry (closed ${closedAt === undefined ? 'never' : `${closedAt - agent.notAfter} ms after it`})`,
      );
      // A new connection with the expired certificate: renewal refused too.
      const again = h2(short, { ca: agent.ca, cert: agent.cert, key: agent.key });
      const renewal = await post(again, '/v1/renew', { csr });
      again.close();
      assert.equal(renewal.status, 401);
      assert.match(renewal.body?.error?.message ?? '', /expired|host CA/);
    } finally {
      await short.stop('SIGKILL');
    }
  });

  test('every call checks the expiry itself: with the server clock past it, calls and renewal on open connections are refused and the connections closed', async (t) => {
    // The server in this process, its clock set by the test (the timer that closes connections at
    // the expiry reads the real one, so only the per-call check can refuse here).
    const dir = tempDir('limits-clock');
    const backend = await SqliteBackend.open(join(dir, 'kport.db'));
    const { authorities, seal } = await loadAuthorities(backend, dir);
    let ahead = 0;
    const now = () => new Date(Date.now() + ahead);
    const inProcess = new KportServer({
      backend,
      authorities,
      audit: new ServerAudit(backend, { log: () => {}, now }),
      host: '127.0.0.1',
      port: 0,
      publicNames: [],
      hostCertTtlMs: 3_600_000,
      log: () => {},
      now,
      people: { sealKey: seal, configRoles: [] },
    });
    const { port } = await inProcess.listen();
    try {
      const { secret } = await addToken(backend, { roles: ['discovery'], ttlMs: 3_600_000, now: new Date() });
      const localCa = await fetchPinnedCA({ host: '127.0.0.1', port }, [authorities.pin], () => {});
      const keys = await generateKeys();
      const anonymous = new ServerClient({ host: '127.0.0.1', port }, { ca: localCa });
      const issued = await anonymous.rawCall<{ host_id: string; cert: string; ca: string }>('/v1/join', {
        token: secret,
        roles: ['discovery'],
        hostname: 'clock',
        csr: await createCsr(keys, 'clock'),
        discovery_group: 'g',
      });
      anonymous.close();
      const creds = { ca: issued.ca, cert: issued.cert, key: await keyPem(keys.privateKey) };
      const url = `https://127.0.0.1:${port}`;
      const [a, b] = [h2connect(url, creds), h2connect(url, creds)];
      const closed = [a, b].map((s) => (s.on('error', () => {}), new Promise<void>((resolve) => s.once('close', resolve))));
      assert.equal((await post(a, '/v1/backend', { op: 'get', key: CLUSTER_KEY })).status, 200);
      assert.equal((await post(b, '/v1/backend', { op: 'get', key: CLUSTER_KEY })).status, 200);
      ahead = 3_600_000 + 120_000;
      const call = await post(a, '/v1/backend', { op: 'get', key: CLUSTER_KEY });
      const renewal = await post(b, '/v1/renew', { csr: await createCsr(keys, issued.host_id) });
      t.diagnostic(`after the clock moved: call ${call.status} ${call.body?.error?.message}; renewal ${renewal.status} ${renewal.body?.error?.message}`);
      assert.equal(call.status, 401);
      assert.equal(call.body?.error?.code, 'cert_expired');
      assert.equal(renewal.status, 401);
      assert.equal(renewal.body?.error?.code, 'cert_expired');
      assert.match(renewal.body?.error?.message ?? '', /expired at .*: .*join again with a new token/);
      await Promise.race([Promise.all(closed), raceTimer(10_000).then(() => assert.fail('the server did not close the connections'))]);
    } finally {
      await inProcess.close();
      await backend.close();
    }
  });
});
