// Network mode is a security boundary (issue 12): every way in that must be refused is tried here
// against a real `kport server start` process, over real TLS, by this test process playing the
// attacker. Each refusal is audited and changes nothing in the store.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { fileMoto } from '../helpers/file-peers.ts';
import { auditEvents, networkAgent, pinnedCa, startServer, type TestServer } from '../helpers/network.ts';
import { createAuthority, createCsr, generateKeys, issueLeaf, keyPem, certPem } from '../../src/pki/certs.ts';
import { ApiError } from '../../src/api/errors.ts';
import { routes } from '../../src/api/routes.ts';
import { ServerClient } from '../../src/client/server-client.ts';

interface Joined {
  host_id: string;
  roles: string[];
  cert: string;
  ca: string;
  key: string;
  client: ServerClient;
}

const cluster = (name: string, group: string, extra: { kubeconfig?: string; origin?: string } = {}) =>
  JSON.stringify({
    kind: 'kube_cluster',
    version: 'v3',
    metadata: { name, labels: { 'kport.dev/origin': extra.origin ?? 'cloud', 'kport.internal/discovery-group-name': group, region: 'us-east-1' } },
    spec: extra.kubeconfig ? { kubeconfig: extra.kubeconfig } : { aws: { name, region: 'us-east-1', account_id: '123456789012' } },
  });

describe('network mode refusals: each is audited and writes nothing', { concurrency: false, timeout: 300_000 }, () => {
  let server: TestServer;
  let ca: string;
  const secrets: string[] = [];
  const keys: string[] = [];
  const clients: ServerClient[] = [];

  before(async () => {
    server = await startServer();
    ca = await pinnedCa(server);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop('SIGKILL');
  });

  const anonymous = () => {
    const c = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });
    clients.push(c);
    return c;
  };
  async function token(type: string, extra: string[] = []): Promise<string> {
    const secret = await server.token(type, extra);
    secrets.push(secret);
    return secret;
  }
  async function joinServer(secret: string, roles: string[], group = 'prod', csr?: (keys: CryptoKeyPair) => Promise<string>): Promise<Joined> {
    const pair = await generateKeys();
    const key = await keyPem(pair.privateKey);
    keys.push(key);
    const issued = await anonymous().rawCall<Omit<Joined, 'key' | 'client'>>('/v1/join', {
      token: secret,
      roles,
      hostname: 'attacker',
      csr: await (csr ?? ((k) => createCsr(k, 'attacker')))(pair),
      discovery_group: group,
    });
    const client = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: issued.cert, key });
    clients.push(client);
    return { ...issued, key, client };
  }
  /** Every key in the server's store but the audit trail, read from its sqlite file. */
  const snapshot = async () => {
    const db = new DatabaseSync(join(server.dir, 'data', 'kport.db'), { readOnly: true });
    try {
      const rows = db.prepare("SELECT key, value FROM kv WHERE key NOT LIKE '/resources/audit_event/%' ORDER BY key").all() as Array<{
        key: string;
        value: string;
      }>;
      // Where and when an agent was last heard from is the server's bookkeeping, not a write by the caller.
      return JSON.stringify(rows.map((r) => [r.key, r.value.replace(/"(last_seen|address)":"[^"]*",?/g, '')]));
    } finally {
      db.close();
    }
  };
  /** The call is refused with `code`, an audit event says why, and the store is as it was. */
  async function refused(what: string, call: () => Promise<unknown>, code: string, reason: RegExp, opts: { changes?: boolean } = {}): Promise<void> {
    const before = await snapshot();
    const err = await call().then(
      () => assert.fail(`${what}: the server allowed it`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApiError, `${what}: ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    assert.match(err.message, reason, what);
    const events = await auditEvents(server);
    assert.ok(
      events.some((e) => e.spec.outcome === 'refused' && reason.test(e.spec.reason ?? '')),
      `${what}: audited`,
    );
    if (!opts.changes) assert.equal(await snapshot(), before, `${what}: nothing written`);
  }

  test('joins: an expired token, a used-up token, a token without the role, a CSR whose key the agent does not hold', async () => {
    const short = await token('discovery', ['--ttl=1s']);
    await sleep(1200);
    // The expired token is deleted as it is refused: the one change allowed.
    await refused('expired token', () => joinServer(short, ['discovery']), 'token_invalid', /^token expired or not found$/, { changes: true });
    assert.ok(!(await snapshot()).includes(short));

    const once = await token('discovery', ['--uses=1']);
    await joinServer(once, ['discovery']);
    await refused('a second host on a --uses 1 token', () => joinServer(once, ['discovery']), 'token_invalid', /^token expired or not found$/);

    const discoveryOnly = await token('discovery');
    await refused('a token without the role', () => joinServer(discoveryOnly, ['kube']), 'role_not_allowed', /the token does not allow role kube/);

    // A CSR naming another key than the one that signed it: the signature no longer verifies.
    const other = await generateKeys();
    const swapped = async (own: CryptoKeyPair) => {
      const der = Buffer.from((await createCsr(own, 'attacker')).replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const mine = Buffer.from(await crypto.subtle.exportKey('spki', own.publicKey));
      const theirs = Buffer.from(await crypto.subtle.exportKey('spki', other.publicKey));
      const at = der.indexOf(mine);
      assert.ok(at > 0);
      theirs.copy(der, at);
      return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    };
    await refused(
      'a CSR for a key the agent does not hold',
      () => joinServer(discoveryOnly, ['discovery'], 'prod', swapped),
      'bad_csr',
      /not signed by the ECDSA P-256 key it names/,
    );

    const events = JSON.stringify(await auditEvents(server));
    for (const secret of secrets) assert.ok(!events.includes(secret), 'the audit never holds a token secret');
    assert.match(events, /tok-[0-9a-f]{16}/, 'the audit names tokens by their public name');
  });

  test('calls: another CA, a kube agent writing a cluster, a discovery agent writing another group, a kubeconfig, a token, a user, widening roles', async () => {
    const discovery = await joinServer(await token('discovery'), ['discovery'], 'prod');
    const kube = await joinServer(await token('kube'), ['kube'], 'prod');
    const backend = (c: Joined | ServerClient, body: Record<string, unknown>) => (c instanceof ServerClient ? c : c.client).rawCall('/v1/backend', body);

    // A certificate for the same host id and roles from a CA the attacker made.
    const rogue = await createAuthority('rogue', 86_400_000);
    const pair = await generateKeys();
    const forged = await issueLeaf(rogue, pair.publicKey, {
      commonName: discovery.host_id,
      usage: 'client',
      validForMs: 3_600_000,
      host: { roles: ['discovery'], discovery_group: 'prod' },
    });
    const forger = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: certPem(forged), key: await keyPem(pair.privateKey) });
    clients.push(forger);
    await refused(
      'a cert from another CA',
      () => backend(forger, { op: 'list', prefix: '/resources/kube_cluster/' }),
      'unauthenticated',
      /not issued by this cluster's host CA/,
    );
    await refused('no cert at all', () => backend(anonymous(), { op: 'list', prefix: '/resources/' }), 'unauthenticated', /needs the agent host certificate/);

    // The discovery agent legitimately leads its own group; its fence is real.
    const { lease } = (await backend(discovery, { op: 'grant', ttl_ms: 30_000 })) as { lease: { id: string } };
    const fence = { key: '/leaders/discovery/prod', value: `${discovery.host_id}/${lease.id}` };
    assert.ok(((await backend(discovery, { op: 'create', key: fence.key, value: fence.value, lease: lease.id })) as { item: unknown }).item);
    assert.ok(
      ((await backend(discovery, { op: 'create', key: '/resources/kube_cluster/ok', value: cluster('ok', 'prod'), fence })) as { item: unknown }).item,
      'its own group is allowed',
    );

    await refused(
      'a kube agent writing a kube_cluster',
      () => backend(kube, { op: 'create', key: '/resources/kube_cluster/k', value: cluster('k', 'prod'), fence }),
      'forbidden',
      /may not write kube_cluster resources/,
    );
    await refused(
      "a discovery agent writing another group's cluster",
      () => backend(discovery, { op: 'create', key: '/resources/kube_cluster/x', value: cluster('x', 'staging'), fence }),
      'forbidden',
      /only cloud clusters of its own discovery group/,
    );
    await refused(
      'a cluster with a kubeconfig',
      () =>
        backend(discovery, {
          op: 'create',
          key: '/resources/kube_cluster/y',
          value: cluster('y', 'prod', {
            kubeconfig:
              'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://evil:6443"}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {token: t}}]\n',
          }),
          fence,
        }),
      'forbidden',
      /spec\.aws and never a kubeconfig|not a valid kube_cluster/,
    );
    await refused(
      'a static cluster',
      () => backend(discovery, { op: 'create', key: '/resources/kube_cluster/z', value: cluster('z', 'prod', { origin: 'static' }), fence }),
      'forbidden',
      /only cloud clusters of its own discovery group/,
    );
    await refused(
      'a cluster written without leading the group',
      () => backend(discovery, { op: 'create', key: '/resources/kube_cluster/w', value: cluster('w', 'prod') }),
      'forbidden',
      /only as the leader/,
    );
    await refused(
      'a token',
      () =>
        backend(discovery, {
          op: 'put',
          key: '/resources/token/tok-0000000000000000',
          value: JSON.stringify({
            kind: 'token',
            version: 'v2',
            metadata: { name: 'tok-0000000000000000' },
            spec: { roles: ['Discovery'], hash: '0'.repeat(64) },
          }),
        }),
      'forbidden',
      /may not write \/resources\/token\//,
    );
    await refused(
      'a user',
      () =>
        backend(discovery, {
          op: 'put',
          key: '/resources/user/mallory',
          value: JSON.stringify({ kind: 'user', version: 'v2', metadata: { name: 'mallory' }, spec: { roles: ['editor'] } }),
        }),
      'forbidden',
      /may not write \/resources\/user\/mallory/,
    );
    await refused(
      'an agent record',
      () => backend(discovery, { op: 'delete', key: `/resources/agent/${kube.host_id}` }),
      'forbidden',
      /may not write \/resources\/agent\//,
    );
    await refused(
      "another agent's heartbeat",
      () => backend(discovery, { op: 'put', key: `/resources/discovery_service/${kube.host_id}`, value: '{}', ttl_ms: 60_000 }),
      'forbidden',
      /may not write \/resources\/discovery_service\//,
    );
    await refused('reading tokens', () => backend(discovery, { op: 'list', prefix: '/resources/token/' }), 'forbidden', /may not read \/resources\/token\//);
    await refused('reading users', () => backend(discovery, { op: 'get', key: '/resources/user/admin' }), 'forbidden', /may not read/);
    await refused('reading the CAs', () => backend(discovery, { op: 'list', prefix: '/' }), 'forbidden', /may not read \/$/);
    await refused(
      'renewal asking for more roles',
      async () => discovery.client.rawCall('/v1/renew', { csr: await createCsr(pair, discovery.host_id), roles: ['discovery', 'kube'] }),
      'roles_widened',
      /may not add roles \(kube\)/,
    );
    // A renewal with the same roles but someone else's key is refused too.
    await refused(
      'renewal with another key',
      async () => discovery.client.rawCall('/v1/renew', { csr: await createCsr(pair, discovery.host_id) }),
      'key_changed',
      /keeps the key the agent joined with/,
    );
  });

  test('a removed agent is refused from its next call, and a running agent stops with a clear message', async (t) => {
    const victim = await joinServer(await token('discovery'), ['discovery'], 'prod');
    await victim.client.rawCall('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' });
    // A watch it holds open ends too, within the server's recheck (5 s).
    const watching = (async () => {
      try {
        for await (const _line of victim.client.lines(routes.watch, { op: 'watch', prefix: '/resources/kube_cluster/' }, AbortSignal.timeout(30_000))) {
        }
      } catch (err) {
        return (err as Error).message;
      }
      return 'aborted';
    })();
    await sleep(300);
    const rm = await server.kport(['agents', 'rm', victim.host_id]);
    assert.equal(rm.exitCode, 0, String(rm.stderr));
    const removedAt = Date.now();
    assert.match(await watching, /ended the watch/);
    assert.ok(Date.now() - removedAt < 7000, `the watch ended ${Date.now() - removedAt} ms after the removal`);
    await refused(
      'a removed agent',
      () => victim.client.rawCall('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' }),
      'agent_removed',
      new RegExp(`agent ${victim.host_id} was removed`),
    );
    await refused('a removed agent renewing', async () => victim.client.rawCall('/v1/renew', { csr: 'x' }), 'agent_removed', /was removed/);

    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await networkAgent(await fileMoto(), server, {
      name: 'removed',
      group: 'other',
      matchers: [{ types: ['eks'], regions: ['us-east-1'], tags: { env: 'none' } }],
    });
    const proc = agent.start();
    await waitFor('the agent to join', async () => /leading discovery group/.test(agent.log), { timeoutMs: 30_000 });
    assert.equal((await server.kport(['agents', 'rm', agent.hostId()])).exitCode, 0);
    const result = await proc;
    assert.equal(result.exitCode, 4, agent.log);
    assert.match(
      String(result.stderr),
      /was removed from this cluster \(kport agents rm\): this agent stops; remove .*identity and join again with a new token/,
    );
  });

  test('a wrong CA pin stops the agent before anything is sent', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const joinsBefore = (await auditEvents(server)).filter((e) => e.spec.type === 'agent.join').length;
    const agent = await networkAgent(await fileMoto(), server, {
      name: 'pinned',
      group: 'g',
      matchers: [{ types: ['eks'], regions: ['us-east-1'] }],
      pin: `sha256:${'0'.repeat(64)}`,
    });
    const result = await agent.start();
    assert.equal(result.exitCode, 4);
    assert.match(String(result.stderr), /presents a CA \(sha256:[0-9a-f]{64}\) that does not match teleport\.ca_pin \(sha256:0{64}\): nothing was sent/);
    assert.equal((await auditEvents(server)).filter((e) => e.spec.type === 'agent.join').length, joinsBefore, 'the server heard no join');
  });

  test('the store holds no token secret, no agent private key and no CA key in clear', async () => {
    const files = readdirSync(join(server.dir, 'data')).filter((f) => f.startsWith('kport.db'));
    assert.ok(files.length > 0);
    const store = Buffer.concat(files.map((f) => readFileSync(join(server.dir, 'data', f))));
    assert.ok(secrets.length >= 5);
    for (const secret of secrets) assert.equal(store.indexOf(secret), -1, 'a token secret is in the store');
    for (const key of keys) {
      const body = key.replace(/-----[^-]+-----|\s/g, '');
      assert.equal(store.indexOf(body.slice(0, 40)), -1, 'an agent key is in the store (PEM)');
      assert.equal(store.indexOf(Buffer.from(body, 'base64').subarray(-40)), -1, 'an agent key is in the store (DER)');
    }
    assert.equal(store.indexOf('PRIVATE KEY'), -1, 'a private key in clear');
  });
});
