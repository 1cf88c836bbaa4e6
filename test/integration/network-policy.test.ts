// What agents may read, write and make the server store (issue 18), tried against a real `kport
// server start` process over real TLS by this test process holding real agent identities: raw
// node:http2 streams, so what is asserted is the bytes that left the server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { auditEvents, joinByHand, networkAgent, pinnedCa, startServer, type HandJoined as Joined, type TestServer } from '../helpers/network.ts';
import type { Moto } from '../peers/moto.ts';
import { waitFor } from '../peers/process.ts';
import { cloudClusterJson as cloudCluster } from '../helpers/resources.ts';
import { createCsr, generateKeys, keyPem } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';

const BEARER = `kport-test-bearer-${randomBytes(12).toString('hex')}`;
const staticCluster = (name: string, token: string) => `kind: kube_cluster
version: v3
metadata:
  name: ${name}
  labels: {env: dev}
spec:
  kubeconfig: |
    apiVersion: v1
    kind: Config
    clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}]
    contexts: [{name: c, context: {cluster: c, user: u}}]
    current-context: c
    users: [{name: u, user: {token: ${token}}}]
`;
const heartbeat = (host: string, group: string, spec: Record<string, unknown> = {}) =>
  JSON.stringify({
    kind: 'discovery_service',
    version: 'v1',
    metadata: { name: host, description: 'kport discovery agent on ip-10-0-0-1', expires: new Date(Date.now() + 60_000).toISOString() },
    spec: {
      host_id: host,
      hostname: 'ip-10-0-0-1',
      discovery_group: group,
      state: 'standby',
      started: new Date().toISOString(),
      clusters: { seen: 0, created: 0, updated: 0, deleted: 0 },
      errors: [],
      ...spec,
    },
  });

describe('network mode policy: what agents read, write and make the server store', { concurrency: false, timeout: 300_000 }, () => {
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

  const session = (id?: Joined, localAddress?: string) => {
    const s = connect(`https://127.0.0.1:${server.port}`, { ca, ...(id && { cert: id.cert, key: id.key }), ...(localAddress && { localAddress }) });
    s.on('error', () => {});
    sessions.push(s);
    return s;
  };
  /** One POST on its own connection: the status and the exact bytes the server sent. */
  async function raw(
    id: Joined | undefined,
    path: string,
    body: unknown,
    localAddress?: string,
  ): Promise<{ status: number; bytes: Buffer; json: { error?: { code: string; message: string } } & Record<string, unknown> }> {
    const s = session(id, localAddress);
    try {
      const stream = s.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
      stream.end(JSON.stringify(body));
      let status = 0;
      stream.once('response', (h) => (status = Number(h[':status'])));
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const bytes = Buffer.concat(chunks);
      return { status, bytes, json: JSON.parse(bytes.toString('utf8')) };
    } finally {
      s.close();
    }
  }
  /** An open watch: every byte it has received so far, and a way to end it. */
  function watch(id: Joined, prefix: string): { bytes: () => string; status: Promise<number>; close: () => void } {
    const s = session(id);
    const stream = s.request({ ':method': 'POST', ':path': '/v1/watch', 'content-type': 'application/json' });
    stream.end(JSON.stringify({ op: 'watch', prefix }));
    let received = '';
    stream.on('data', (c: Buffer) => (received += c.toString('utf8')));
    stream.on('error', () => {});
    const status = new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
    return { bytes: () => received, status, close: () => s.destroy() };
  }
  const joinWith = (token: string, roles: string[], opts: { group?: string; pair?: CryptoKeyPair; hostname?: string } = {}) =>
    joinByHand(server, ca, { token, roles, ...opts });
  const refusalOf = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail('the server allowed it'),
      (e: unknown) => (assert.ok(e instanceof ApiError, String(e)), e),
    );
  const backend = (id: Joined, body: Record<string, unknown>) => raw(id, '/v1/backend', body);
  /** Reads the server's store file directly: what it holds, not what it answers. */
  const store = <T>(sql: string, ...args: string[]): T[] => {
    const db = new DatabaseSync(join(server.dir, 'data', 'kport.db'), { readOnly: true });
    try {
      return db.prepare(sql).all(...args) as T[];
    } finally {
      db.close();
    }
  };

  test("no agent receives a static cluster's kubeconfig: get, list, watch and write answers carry no bearer token; a cloud cluster's compare-and-swap still works", async () => {
    writeFileSync(join(server.dir, 'static.yaml'), staticCluster('static-one', BEARER));
    const created = await server.kport(['create', '-f', join(server.dir, 'static.yaml')]);
    assert.equal(created.exitCode, 0, String(created.stderr));
    const discovery = await joinWith(await server.token('discovery'), ['discovery']);
    const kube = await joinWith(await server.token('kube'), ['kube']);

    const watches = [watch(discovery, '/resources/kube_cluster/'), watch(kube, '/resources/kube_cluster/')];
    for (const w of watches) assert.equal(await w.status, 200);
    for (const agent of [discovery, kube]) {
      const got = await backend(agent, { op: 'get', key: '/resources/kube_cluster/static-one' });
      assert.equal(got.status, 200);
      assert.match(got.bytes.toString(), /static-one/, 'the agent sees the cluster');
      assert.equal(got.bytes.indexOf(BEARER), -1, `get sent the bearer token to a ${agent.roles.join(',')} agent`);
      assert.equal(got.bytes.indexOf('kubeconfig'), -1);
      const listed = await backend(agent, { op: 'list', prefix: '/resources/kube_cluster/' });
      assert.match(listed.bytes.toString(), /static-one/);
      assert.equal(listed.bytes.indexOf(BEARER), -1, 'list sent the bearer token');
    }

    // The static cluster changes while both agents watch: the event arrives, the new token does not.
    const rotated = `${BEARER}-rotated`;
    writeFileSync(join(server.dir, 'static.yaml'), staticCluster('static-one', rotated));
    assert.equal((await server.kport(['create', '-f', join(server.dir, 'static.yaml'), '--force'])).exitCode, 0);
    for (const w of watches) {
      await waitFor('the watch event', async () => /static-one/.test(w.bytes()) || undefined, { timeoutMs: 30_000 });
      assert.ok(!w.bytes().includes(BEARER), 'a watch event carried the bearer token');
      w.close();
    }

    // The discovery engine's own cluster: read back byte for byte, so its compare-and-swap at the revision it read succeeds.
    const { json: granted } = await backend(discovery, { op: 'grant', ttl_ms: 30_000 });
    const lease = (granted.lease as { id: string }).id;
    const fence = { key: '/leaders/discovery/prod', value: `${discovery.host_id}/${lease}` };
    assert.equal((await backend(discovery, { op: 'create', key: fence.key, value: fence.value, lease })).status, 200);
    const written = cloudCluster('eks-a', 'prod');
    assert.equal((await backend(discovery, { op: 'create', key: '/resources/kube_cluster/eks-a', value: written, fence })).status, 200);
    const { json: read } = await backend(discovery, { op: 'get', key: '/resources/kube_cluster/eks-a' });
    const item = read.item as { value: string; revision: number };
    assert.equal(item.value, written, 'a cloud cluster reads back as written');
    const swapped = await backend(discovery, {
      op: 'cas',
      key: '/resources/kube_cluster/eks-a',
      value: cloudCluster('eks-a', 'prod').replace('us-east-1"', 'us-east-1 (renamed)"'),
      revision: item.revision,
      fence,
    });
    assert.ok((swapped.json.item as { revision: number } | null)?.revision, `the compare-and-swap at the revision read succeeds: ${swapped.bytes.toString()}`);
    // A static cluster is still not the agent's to write, filtered or not.
    const { json: seen } = await backend(discovery, { op: 'get', key: '/resources/kube_cluster/static-one' });
    const stat = seen.item as { value: string; revision: number };
    const takeover = await backend(discovery, { op: 'cas', key: '/resources/kube_cluster/static-one', value: stat.value, revision: stat.revision, fence });
    assert.equal(takeover.status, 403);
    assert.equal(
      store<{ value: string }>("SELECT value FROM kv WHERE key = '/resources/kube_cluster/static-one'")[0]?.value.includes(rotated),
      true,
      'the server still holds the kubeconfig',
    );
  });

  test('heartbeats and join hostnames with ESC, BEL or U+202E are refused and nothing is written', async () => {
    const discovery = await joinWith(await server.token('discovery'), ['discovery']);
    const key = `/resources/discovery_service/${discovery.host_id}`;
    const evil: Array<[string, Record<string, unknown>]> = [
      ['a window-title escape in the hostname', { hostname: '\u001b]0;pwned\u0007ip-10-0-0-1' }],
      ['U+202E in the hostname', { hostname: 'ip-10\u202e1-0-0' }],
      ['a screen clear in an error', { errors: [{ scope: 'matcher 0', error: '\u001b[2J\u001b[HAll agents healthy', at: new Date().toISOString() }] }],
      ['a state that is not one of its values', { state: 'leader\u001b[32m OK' }],
      // (A megabyte of them is refused for its size first: network-store.test.ts.)
      ['101 errors of 1 KiB', { errors: Array.from({ length: 101 }, () => ({ scope: 'matcher 0', error: 'x'.repeat(1024), at: new Date().toISOString() })) }],
    ];
    for (const [what, spec] of evil) {
      const res = await backend(discovery, { op: 'put', key, value: heartbeat(discovery.host_id, 'prod', spec), ttl_ms: 60_000 });
      assert.equal(res.status, 403, `${what}: ${res.bytes.toString()}`);
      assert.match(res.json.error?.message ?? '', /heartbeat that is not valid/, what);
      assert.equal(store('SELECT key FROM kv WHERE key = ?', key).length, 0, `${what}: written`);
    }
    const ok = await backend(discovery, { op: 'put', key, value: heartbeat(discovery.host_id, 'prod'), ttl_ms: 60_000 });
    assert.equal(ok.status, 200, ok.bytes.toString());

    const secret = await server.token('discovery');
    for (const hostname of ['evil\u001b[2J', 'host\u202eexe.', 'bell\u0007', 'h'.repeat(254)]) {
      const err = await refusalOf(joinWith(secret, ['discovery'], { hostname }));
      assert.equal(err.code, 'bad_request', err.message);
      assert.match(err.message, /the hostname (holds the unprintable character|is 254 characters long)/);
    }
    assert.equal(store("SELECT key FROM kv WHERE key LIKE '/resources/agent/%' AND value LIKE '%evil%'").length, 0);
  });

  test('a join whose answer was lost is retried with the same key: the same host id, no second use; the used-up token lets no other key in', async () => {
    const once = await server.token('discovery', ['--uses=1']);
    const pair = await generateKeys();
    const first = await joinWith(once, ['discovery'], { pair });
    // The agent never got that answer: it asks again with the same key and token.
    const again = await joinWith(once, ['discovery'], { pair });
    assert.equal(again.host_id, first.host_id);
    assert.equal((await backend(again, { op: 'list', prefix: '/resources/kube_cluster/' })).status, 200, 'the retried certificate works');
    const stolen = await refusalOf(joinWith(once, ['discovery']));
    assert.equal(stolen.code, 'token_invalid', 'a used-up token lets no other key join');
    const otherGroup = await refusalOf(joinWith(once, ['discovery'], { pair, group: 'staging' }));
    assert.equal(otherGroup.code, 'key_in_use', otherGroup.message);
    assert.equal(store("SELECT key FROM kv WHERE key LIKE '/resources/agent/%' AND value LIKE ?", `%${first.host_id}%`).length, 1);

    // Two uses: a retry spends none, so a second agent still joins and a third does not.
    const twice = await server.token('discovery', ['--uses=2']);
    const a = await generateKeys();
    const [one, two] = await Promise.all([joinWith(twice, ['discovery'], { pair: a }), joinWith(twice, ['discovery'], { pair: a })]);
    assert.equal(one.host_id, two.host_id, 'a join sent twice at once is one agent');
    await joinWith(twice, ['discovery']);
    assert.equal((await refusalOf(joinWith(twice, ['discovery']))).code, 'token_invalid');

    // The same key with another valid token: a key joins once.
    const reused = await refusalOf(joinWith(await server.token('discovery'), ['discovery'], { pair }));
    assert.equal(reused.code, 'key_in_use');
    assert.match(reused.message, new RegExp(`already joined as agent ${first.host_id}: make a new key`));

    // Removed: the key's earlier join is not handed out again.
    assert.equal((await server.kport(['agents', 'rm', first.host_id])).exitCode, 0);
    const removed = await refusalOf(joinWith(once, ['discovery'], { pair }));
    assert.equal(removed.code, 'key_in_use');
    assert.match(removed.message, /which was removed/);
  });

  test('an agent holds at most 16 leases and 16 watches; the refusal says the limit and is audited', async () => {
    const discovery = await joinWith(await server.token('discovery'), ['discovery']);
    const leases: string[] = [];
    for (let i = 0; i < 16; i++) {
      const res = await backend(discovery, { op: 'grant', ttl_ms: 60_000 });
      assert.equal(res.status, 200, res.bytes.toString());
      leases.push((res.json.lease as { id: string }).id);
    }
    const over = await backend(discovery, { op: 'grant', ttl_ms: 60_000 });
    assert.equal(over.status, 429);
    assert.equal(over.json.error?.code, 'too_many_leases');
    assert.match(over.json.error?.message ?? '', /already holds 16 leases, the most one agent may/);
    await backend(discovery, { op: 'revoke', lease: leases[0] });
    assert.equal((await backend(discovery, { op: 'grant', ttl_ms: 60_000 })).status, 200, 'a revoked lease makes room');

    const kube = await joinWith(await server.token('kube'), ['kube']);
    const open = Array.from({ length: 16 }, () => watch(kube, '/resources/kube_cluster/'));
    for (const w of open) assert.equal(await w.status, 200);
    const extra = await backend(kube, { op: 'list', prefix: '/resources/kube_cluster/' }).then(() => watch(kube, '/resources/kube_cluster/'));
    assert.equal(await extra.status, 429);
    await waitFor('the refusal body', async () => /too_many_watches/.test(extra.bytes()) || undefined, { timeoutMs: 10_000 });
    assert.match(extra.bytes(), /already holds 16 watches open, the most one agent may/);
    open[0]!.close();
    // The server counts a watch out when its stream closes.
    await waitFor(
      'room for one more watch',
      async () => {
        const w = watch(kube, '/resources/kube_cluster/');
        const status = await w.status;
        if (status !== 200) w.close();
        return status === 200 || undefined;
      },
      { timeoutMs: 30_000 },
    );
    const events = await auditEvents(server);
    assert.ok(
      events.some((e) => e.spec.host_id === discovery.host_id && /16 leases/.test(e.spec.reason ?? '')),
      'lease refusal audited',
    );
    assert.ok(
      events.some((e) => e.spec.host_id === kube.host_id && /16 watches/.test(e.spec.reason ?? '')),
      'watch refusal audited',
    );
  });

  test("a removed agent's refused call is one audit event naming its host id", async () => {
    const victim = await joinWith(await server.token('discovery'), ['discovery']);
    assert.equal((await server.kport(['agents', 'rm', victim.host_id])).exitCode, 0);
    const before = (await auditEvents(server)).length;
    const res = await backend(victim, { op: 'list', prefix: '/resources/kube_cluster/' });
    assert.equal(res.json.error?.code, 'agent_removed');
    const added = (await auditEvents(server)).slice(before);
    const removed = (await auditEvents(server)).filter((e) => /was removed/.test(e.spec.reason ?? '') && e.spec.reason?.includes(victim.host_id));
    assert.equal(removed.length, 1, JSON.stringify(added));
    assert.equal(removed[0]!.spec.host_id, victim.host_id);
  });

  test('a 1 MB key is refused before anything else and its refusal stores a few hundred bytes', async () => {
    const discovery = await joinWith(await server.token('discovery'), ['discovery']);
    const auditBytes = () => store<{ n: number }>("SELECT COALESCE(SUM(LENGTH(value)), 0) AS n FROM kv WHERE key LIKE '/resources/audit_event/%'")[0]!.n;
    const stored0 = auditBytes();
    const big = `/resources/token/${'k'.repeat(1_000_000)}`;
    // From an address of its own, whose budget the other tests have not used.
    const res = await raw(discovery, '/v1/backend', { op: 'get', key: big }, '127.0.0.3');
    assert.equal(res.status, 400);
    assert.match(res.json.error?.message ?? '', /a key is at most 1024 bytes \(this one has 1000017\)/);
    const one = auditBytes() - stored0;
    assert.ok(one > 0 && one < 2048, `a refused 1 MB key stored ${one} bytes`);
  });

  test('one address stores and logs at most 64 KiB of refusals a minute', async (t) => {
    const discovery = await joinWith(await server.token('discovery'), ['discovery']);
    const auditBytes = () => store<{ n: number }>("SELECT COALESCE(SUM(LENGTH(value)), 0) AS n FROM kv WHERE key LIKE '/resources/audit_event/%'")[0]!.n;
    // A flood of refused reads with the longest key allowed, from one address, within a minute.
    const log0 = server.log.length;
    const stored1 = auditBytes();
    // From an address of its own, so its minute starts with the flood.
    const s = session(discovery, '127.0.0.2');
    const key = `/resources/token/${'t'.repeat(1000)}`;
    await Promise.all(
      Array.from({ length: 300 }, async () => {
        const stream = s.request({ ':method': 'POST', ':path': '/v1/backend', 'content-type': 'application/json' });
        stream.end(JSON.stringify({ op: 'get', key }));
        stream.resume();
        await new Promise((resolve) => stream.once('close', resolve));
      }),
    );
    await sleep(500);
    const stored = auditBytes() - stored1;
    const logged = server.log.length - log0;
    t.diagnostic(`300 refused 1 KB-key reads: ${stored} bytes stored, ${logged} bytes logged`);
    assert.ok(
      (await auditEvents(server)).some((e) => (e.spec as { remote_addr?: string }).remote_addr?.startsWith('127.0.0.2:')),
      'the flood came from its own address',
    );
    assert.ok(stored <= 64 * 1024, `one address stored ${stored} bytes of refusals in a minute`);
    assert.ok(logged <= 64 * 1024 + 4096, `one address made the server log ${logged} bytes in a minute`);
  });
});

describe('an agent killed before its join was answered', { timeout: 120_000 }, () => {
  test('restarts with the key it kept and receives the identity the server already counted, on a --uses 1 token', async () => {
    const server = await startServer();
    try {
      const ca = await pinnedCa(server);
      const token = await server.token('discovery', ['--uses=1']);
      // No AWS here: the agent is asked only to join; its polls fail, which is fine.
      const noAws = {
        env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1', AWS_MAX_ATTEMPTS: '1' },
      } as unknown as Moto;
      const agent = await networkAgent(noAws, server, { name: 'lost-answer', group: 'prod', matchers: [{ types: ['eks'], regions: ['us-east-1'] }], token });
      // The first run made its key, kept it, and sent the join; it died before the answer came.
      const pair = await generateKeys();
      mkdirSync(join(agent.dataDir, 'identity'), { recursive: true, mode: 0o700 });
      writeFileSync(join(agent.dataDir, 'identity', 'key.pem'), await keyPem(pair.privateKey), { mode: 0o600 });
      const client = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
      const lost = await client.rawCall<{ host_id: string }>('/v1/join', {
        token,
        roles: ['discovery'],
        hostname: 'lost-answer',
        csr: await createCsr(pair, 'lost-answer'),
        discovery_group: 'prod',
      });
      client.close();

      const proc = agent.start();
      let exit: number | undefined;
      void proc.then((r) => (exit = r.exitCode ?? -1));
      const hostId = await waitFor(
        'the restarted agent to hold an identity',
        async () => (exit !== undefined ? `exited ${exit}` : existsSync(join(agent.dataDir, 'identity', 'identity.json')) ? agent.hostId() : undefined),
        { timeoutMs: 60_000 },
      );
      assert.equal(hostId, lost.host_id, agent.log);
      proc.kill('SIGKILL');
      await proc.catch(() => undefined);
      const agents = JSON.parse(String((await server.kport(['get', 'agent', '--format=json'])).stdout)) as unknown[];
      assert.equal(agents.length, 1, 'one agent record');

      // The admin handed out a new token instead: the kept key already joined, so the agent makes a new one.
      const other = await networkAgent(noAws, server, {
        name: 'new-token',
        group: 'prod',
        matchers: [{ types: ['eks'], regions: ['us-east-1'] }],
        token: await server.token('discovery', ['--uses=1']),
      });
      mkdirSync(join(other.dataDir, 'identity'), { recursive: true, mode: 0o700 });
      writeFileSync(join(other.dataDir, 'identity', 'key.pem'), await keyPem(pair.privateKey), { mode: 0o600 });
      const second = other.start();
      let secondExit: number | undefined;
      void second.then((r) => (secondExit = r.exitCode ?? -1));
      const newId = await waitFor(
        'the agent with the new token to join',
        async () =>
          secondExit !== undefined ? `exited ${secondExit}` : existsSync(join(other.dataDir, 'identity', 'identity.json')) ? other.hostId() : undefined,
        { timeoutMs: 60_000 },
      );
      assert.match(newId, /^[0-9a-f-]{36}$/, other.log);
      assert.notEqual(newId, lost.host_id);
      second.kill('SIGKILL');
      await second.catch(() => undefined);
    } finally {
      await server.stop('SIGKILL');
    }
  });
});
