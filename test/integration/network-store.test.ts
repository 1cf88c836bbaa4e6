// What one joined agent can make the server store and show (issue 18, second round): heartbeat
// sizes and a write budget, the text of the clusters a leader records, hostnames that pass for
// another agent's, and a removed agent's open watch. A real `kport server start` process; this
// test process holds real agent identities over raw node:http2.
import assert from 'node:assert/strict';
import { connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { joinByHand, pinnedCa, startServer, type HandJoined as Joined, type TestServer } from '../helpers/network.ts';
import { waitFor } from '../peers/process.ts';
import { cloudClusterJson as cloudCluster } from '../helpers/resources.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';
type Answer = { status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> };

const kubeServer = (host: string, clusters: string[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    kind: 'kube_server',
    version: 'v1',
    metadata: { name: host, expires: new Date(Date.now() + 60_000).toISOString() },
    spec: { host_id: host, hostname: 'node-1', clusters, started: new Date().toISOString(), ...extra },
  });
const discoveryBeat = (host: string, group: string, hostname = 'ip-10-0-0-1') =>
  JSON.stringify({
    kind: 'discovery_service',
    version: 'v1',
    metadata: { name: host, expires: new Date(Date.now() + 60_000).toISOString() },
    spec: {
      host_id: host,
      hostname,
      discovery_group: group,
      state: 'standby',
      started: new Date().toISOString(),
      clusters: { seen: 0, created: 0, updated: 0, deleted: 0 },
      errors: [],
    },
  });

describe('network mode: what one agent can make the server store and show', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let ca: string;
  const sessions: ClientHttp2Session[] = [];

  before(async () => {
    server = await startServer();
    ca = await pinnedCa(server);
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    await server?.stop('SIGKILL');
  });

  const session = (id: Joined) => {
    const s = connect(`https://127.0.0.1:${server.port}`, { ca, cert: id.cert, key: id.key });
    s.on('error', () => {});
    sessions.push(s);
    return s;
  };
  async function call(s: ClientHttp2Session, body: unknown): Promise<Answer> {
    const stream = s.request({ ':method': 'POST', ':path': '/v1/backend', 'content-type': 'application/json' });
    stream.end(JSON.stringify(body));
    let status = 0;
    stream.once('response', (h) => (status = Number(h[':status'])));
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { status, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  }
  const joinWith = (roles: string[], opts: { group?: string; hostname?: string } = {}) => joinByHand(server, ca, { roles, ...opts });
  test("an agent renews at most once a quarter of its certificate's life: a renewal loop is refused with 429", async () => {
    const pair = await generateKeys();
    const issued = await joinByHand(server, ca, { hostname: 'renewer', pair });
    const agent = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: issued.cert, key: issued.key });
    try {
      const csr = await createCsr(pair, issued.host_id);
      const first = await agent.rawCall<{ cert: string }>('/v1/renew', { csr });
      assert.match(first.cert, /BEGIN CERTIFICATE/);
      // Each renewal is a signature and an audit event: a loop of them is not an agent's pace.
      const again = await agent.rawCall('/v1/renew', { csr }).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(again instanceof ApiError, 'a second renewal at once was answered');
      assert.equal(again.status, 429);
      assert.match(again.message, /renewed its certificate \d+ s ago: a certificate is renewed at two thirds of its life, at most once every 21600 s/);
    } finally {
      agent.close();
    }
  });

  /** Makes `id` the leader of `group` (a lease and the leader key): the fence its cluster writes carry. */
  async function lead(s: ClientHttp2Session, id: Joined, group: string): Promise<{ key: string; value: string }> {
    const granted = await call(s, { op: 'grant', ttl_ms: 60_000 });
    const lease = (granted.json.lease as { id: string }).id;
    const fence = { key: `/leaders/discovery/${group}`, value: `${id.host_id}/${lease}` };
    const claimed = await call(s, { op: 'create', key: fence.key, value: fence.value, lease });
    assert.equal(claimed.status, 200, JSON.stringify(claimed.json));
    return fence;
  }
  const stored = <T>(sql: string, ...args: string[]): T[] => {
    const db = new DatabaseSync(join(server.dir, 'data', 'kport.db'), { readOnly: true });
    try {
      return db.prepare(sql).all(...args) as T[];
    } finally {
      db.close();
    }
  };

  test('a kube_server heartbeat names at most 1,000 clusters, and no value an agent writes is over 128 KiB (413); nothing is written', async () => {
    const kube = await joinWith(['kube']);
    const s = session(kube);
    const key = `/resources/kube_server/${kube.host_id}`;
    const names = Array.from({ length: 1001 }, (_, i) => `cluster-${i}`);
    const many = await call(s, { op: 'put', key, value: kubeServer(kube.host_id, names), ttl_ms: 60_000 });
    assert.equal(many.status, 403, JSON.stringify(many.json).slice(0, 300));
    assert.match(many.json.error?.message ?? '', /spec\.clusters/);
    const large = await call(s, { op: 'put', key, value: kubeServer(kube.host_id, ['c'.repeat(200) + 1], { pad: 'x'.repeat(130 * 1024) }), ttl_ms: 60_000 });
    assert.equal(large.status, 413, JSON.stringify(large.json));
    assert.match(large.json.error?.message ?? '', /at most 131072 bytes/);
    assert.equal(stored('SELECT key FROM kv WHERE key = ?', key).length, 0, 'nothing written');
    const ok = await call(s, { op: 'put', key, value: kubeServer(kube.host_id, names.slice(0, 1000)), ttl_ms: 60_000 });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });

  test('an agent writing its heartbeat in a loop is refused (429) past 300 writes a minute; its cluster writes as the fenced leader are not counted', async (t) => {
    const discovery = await joinWith(['discovery'], { group: 'flood' });
    const s = session(discovery);
    const key = `/resources/discovery_service/${discovery.host_id}`;
    const statuses: number[] = [];
    let refusal = '';
    const started = Date.now();
    for (let i = 0; i < 400; i++) {
      const res = await call(s, { op: 'put', key, value: discoveryBeat(discovery.host_id, 'flood'), ttl_ms: 60_000 });
      statuses.push(res.status);
      if (res.status === 429) refusal = res.json.error?.message ?? '';
    }
    const seconds = (Date.now() - started) / 1000;
    const written = statuses.filter((x) => x === 200).length;
    t.diagnostic(`${written} of 400 heartbeats written in ${seconds.toFixed(1)} s`);
    // The burst, and what refills (5 a second) while the loop ran.
    assert.ok(written <= 300 + Math.ceil(seconds * 5) + 1, `${written} heartbeats written in ${seconds.toFixed(1)} s`);
    assert.ok(statuses.includes(429), 'some are refused');
    assert.match(refusal, /wrote more than 300 values or 1 MiB in the last minute: try again in \d+ s$/);
    // Cluster records written by a group's fenced leader are not counted: 320 in a row all pass.
    const leader = await joinWith(['discovery'], { group: 'many' });
    const ls = session(leader);
    const fence = await lead(ls, leader, 'many');
    for (let i = 0; i < 320; i++) {
      const res = await call(ls, { op: 'create', key: `/resources/kube_cluster/many-${i}`, value: cloudCluster(`many-${i}`, 'many'), fence });
      assert.equal(res.status, 200, `cluster ${i}: ${JSON.stringify(res.json)}`);
    }
  });

  test("a leader's kube_cluster records hold printable, bounded text and never an expiry; nothing else is written", async () => {
    const discovery = await joinWith(['discovery'], { group: 'text' });
    const s = session(discovery);
    const fence = await lead(s, discovery, 'text');
    const evil: Array<[string, Record<string, unknown>]> = [
      ['a window-title escape in the description', { description: '\u001b]0;pwned\u0007' }],
      ['U+202E in a label value', { labels: { env: '\u202eprod' } }],
      ['an expiry far away', { expires: '9999-01-01T00:00:00Z' }],
    ];
    for (const [what, metadata] of evil) {
      const res = await call(s, { op: 'create', key: '/resources/kube_cluster/evil', value: cloudCluster('evil', 'text', metadata), fence });
      assert.equal(res.status, 403, `${what}: ${JSON.stringify(res.json)}`);
    }
    assert.equal(stored("SELECT key FROM kv WHERE key = '/resources/kube_cluster/evil'").length, 0, 'nothing written');
    const ok = await call(s, { op: 'create', key: '/resources/kube_cluster/evil', value: cloudCluster('evil', 'text', { labels: { env: 'prod' } }), fence });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });

  test('hostnames are RFC 1123 host names: spaces, ideographic spaces, fillers, combining marks and fullwidth letters are refused at join and in heartbeats', async () => {
    const spoofs = ['vm (8d5d1fa8)          g1', 'vm\u3000(8d5d1fa8)', 'v\u0301\u0301\u0301m', '\uff56\uff4d', '\u3164', `${'a'.repeat(64)}.example`];
    for (const hostname of spoofs) {
      const err = await joinWith(['discovery'], { hostname }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApiError, `${JSON.stringify(hostname)} joined`);
      assert.equal(err.status, 400, err.message);
      assert.match(err.message, /the hostname (may hold only letters|has a label longer than 63)/);
    }
    const discovery = await joinWith(['discovery'], { group: 'g1', hostname: 'ip-10-0-0-1.ec2.internal' });
    const s = session(discovery);
    const key = `/resources/discovery_service/${discovery.host_id}`;
    for (const hostname of spoofs) {
      const res = await call(s, { op: 'put', key, value: discoveryBeat(discovery.host_id, 'g1', hostname), ttl_ms: 60_000 });
      assert.equal(res.status, 403, `${JSON.stringify(hostname)}: ${JSON.stringify(res.json)}`);
    }
    assert.equal(stored('SELECT key FROM kv WHERE key = ?', key).length, 0, 'nothing written');
  });

  test("a removed agent's open watch receives no event written after the removal, and ends", async () => {
    const kube = await joinWith(['kube']);
    const s = session(kube);
    const stream = s.request({ ':method': 'POST', ':path': '/v1/watch', 'content-type': 'application/json' });
    stream.end(JSON.stringify({ op: 'watch', prefix: '/resources/kube_cluster/' }));
    stream.on('error', () => {});
    let received = '';
    let ended = false;
    stream.on('data', (c: Buffer) => (received += c.toString('utf8')));
    stream.on('close', () => (ended = true));
    const writer = await joinWith(['discovery'], { group: 'watched' });
    const ws = session(writer);
    const fence = await lead(ws, writer, 'watched');
    assert.equal((await call(ws, { op: 'create', key: '/resources/kube_cluster/before-rm', value: cloudCluster('before-rm', 'watched'), fence })).status, 200);
    await waitFor('the event before the removal', async () => /before-rm/.test(received) || undefined, { timeoutMs: 30_000 });
    const removed = await server.kport(['agents', 'rm', kube.host_id]);
    assert.equal(removed.exitCode, 0, String(removed.stderr));
    // Written at once after the removal, well within the server's 5 s recheck.
    for (let i = 0; i < 5; i++)
      assert.equal(
        (await call(ws, { op: 'create', key: `/resources/kube_cluster/after-rm-${i}`, value: cloudCluster(`after-rm-${i}`, 'watched'), fence })).status,
        200,
      );
    await waitFor('the watch to end', async () => ended || undefined, { timeoutMs: 30_000 });
    await sleep(500);
    assert.doesNotMatch(received, /after-rm/, 'no event written after the removal reached the removed agent');
  });
});
