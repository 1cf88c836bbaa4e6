// real kubectl -> the kport server's /k/<cluster> routing -> a tunnel -> an agent -> real kube-apiserver (issue 21).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import WebSocket, { WebSocketServer } from 'ws';
import type { RoleConfig } from '../../src/config/schema.ts';
import { clusterServerName } from '../../src/kube/sni.ts';
import { staticUpstream, type Upstream } from '../../src/kube/upstream.ts';
import { lockUser, unlockUser } from '../../src/people/users.ts';
import { listResources, upsertResource } from '../../src/resources/store.ts';
import { AUDIT_EVENT, type AuditEvent } from '../../src/resources/audit-event.ts';
import type { UpgradeMeta } from '../../src/server/kubeproxy/kube-routes.ts';
import { kubeHome } from '../helpers/kube-home.ts';
import { testAgent, startHarness, type Harness } from '../helpers/route-harness.ts';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { havePeer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const run = promisify(execFile);
const roles = [
  { name: 'prod-dev', kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'], kubernetes_users: [] },
  { name: 'staging-dev', kubernetes_labels: { env: 'staging' }, kubernetes_groups: ['developers'], kubernetes_users: [] },
] as RoleConfig[];

describe('the server routes /k/<cluster> over tunnels to agents', { concurrency: false, timeout: 600_000 }, () => {
  let api: KubeApiserver;
  let h: Harness;
  let upstream: Upstream;
  let dir: string;
  const upgrades: UpgradeMeta[] = [];
  const kubectl = BINARIES.kubectl();

  /** A kubeconfig for `person` at the server, cluster `cluster`; returns its path. */
  async function kubeconfig(person: string, personRoles: string[], cluster: string, opts: { sni?: boolean } = {}): Promise<string> {
    const { cert, key, ca } = await h.personCert(person, personRoles);
    const file = join(dir, `${person}-${cluster}-${opts.sni ? 'sni' : 'path'}.yaml`);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'k',
            cluster: {
              server: opts.sni ? `https://127.0.0.1:${h.port}` : `https://127.0.0.1:${h.port}/k/${cluster}`,
              'certificate-authority-data': b64(ca),
              ...(opts.sni && { 'tls-server-name': clusterServerName(cluster) }),
            },
          },
        ],
        users: [{ name: 'p', user: { 'client-certificate-data': b64(cert), 'client-key-data': b64(key) } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'p' } }],
        'current-context': 'c',
      }),
    );
    return file;
  }
  const k = (config: string, ...args: string[]) =>
    run(kubectl, ['--kubeconfig', config, ...args]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const events = async () => {
    await h.audit.drain();
    return (await listResources<AuditEvent>(h.backend, AUDIT_EVENT)).map((e) => e.spec).filter((e) => e.type === 'kube.request');
  };

  before(async (t) => {
    if (!havePeer(t as never, 'kube-apiserver', [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()])) return;
    api = await startKubeApiserver({ auditLog: true });
    dir = tempDir('routes');
    await kubeHome(api, dir, { roles: [], users: [] });
    const admin = (...args: string[]) => run(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), ...args]);
    await admin('create', 'namespace', 'team-a');
    await admin('create', 'clusterrole', 'reader', '--verb=get,list,watch,create', '--resource=pods,configmaps,namespaces');
    await admin('create', 'clusterrolebinding', 'developers-read', '--clusterrole=reader', '--group=developers');
    h = await startHarness({
      roles,
      upgrades: {
        refusal: (meta) => (meta.pod === 'refused-pod' ? 'a role requires this session to be recorded: use kubectl 1.30 or later' : undefined),
        onUpgrade: (meta) => void upgrades.push(meta),
      },
    });
    const kc = readFileSync(api.kubeconfig(api.proxy), 'utf8');
    await h.cluster('prod-a', { env: 'prod' });
    await h.cluster('prod-lonely', { env: 'prod' });
    await h.cluster('staging-b', { env: 'staging' });
    upstream = staticUpstream({ kind: 'kube_cluster', version: 'v3', metadata: { name: 'prod-a' }, spec: { kubeconfig: kc } } as never);
  });
  after(async () => {
    await h?.close();
    await api?.stop();
  });

  test('alice (role for env=prod) reaches prod-a as herself with her groups; the agent got a signed identity for it', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-1', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-1', ['prod-a']);
    const config = await kubeconfig('alice', ['prod-dev'], 'prod-a');
    const who = await waitFor(
      'alice through the server',
      async () => {
        const r = await k(config, 'auth', 'whoami', '-o', 'json');
        return r.code === 0 ? r : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const user = JSON.parse(who.stdout).status.userInfo;
    assert.equal(user.username, 'alice');
    assert.deepEqual(user.groups, ['developers', 'system:authenticated']);
    await agent.settled();
    assert.ok(agent.admitted.length > 0);
    assert.ok(agent.admitted.every((i) => i.person === 'alice' && i.cluster === 'prod-a' && i.hostId === 'agent-1'));
    const ns = await k(config, 'get', 'ns', '-o', 'name');
    assert.equal(ns.code, 0, ns.stderr);
    assert.match(ns.stdout, /namespace\/team-a/);
    const allowed = (await events()).filter((e) => e.outcome === 'allowed' && e.user === 'alice');
    const list = allowed.find((e) => e.verb === 'list' && e.resource === 'namespaces');
    assert.ok(list, JSON.stringify(allowed));
    assert.equal(list.cluster, 'prod-a');
    assert.equal(list.kube_user, 'alice');
    assert.deepEqual(list.kube_groups, ['developers', 'system:authenticated']);
    assert.equal(list.status, 200);
    assert.equal(list.host_id, 'agent-1');
    await agent.settled();
    assert.ok(
      agent.admitted.some((i) => i.sessionId === list.session_id),
      'the audit event names the session id the agent received',
    );
    // The agent named alice and that session to the cluster: its own audit log joins kport's.
    const seen = await waitFor(
      "the request in the API server's audit log",
      async () => api.auditEvents().find((e) => e.impersonatedUser?.extra?.['kport.dev/session-id']?.[0] === list.session_id),
      { timeoutMs: 30_000 },
    );
    assert.equal(seen.user.username, 'kport-proxy');
    assert.equal(seen.impersonatedUser?.username, 'alice');
    assert.deepEqual(seen.impersonatedUser?.extra?.['kport.dev/original-user'], ['alice']);
  });

  test('bob (role for env=staging) gets for prod-a exactly the answer for a missing cluster, and nothing reaches any agent', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-2', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-2', ['prod-a', 'staging-b']);
    const hidden = await k(await kubeconfig('bob', ['staging-dev'], 'prod-a'), 'get', '--raw', '/api/v1/namespaces');
    const missing = await k(await kubeconfig('bob', ['staging-dev'], 'no-such'), 'get', '--raw', '/api/v1/namespaces');
    assert.equal(hidden.code, 1);
    assert.equal(hidden.code, missing.code);
    assert.match(hidden.stderr, /kube_cluster "prod-a" not found/);
    assert.equal(hidden.stderr.replaceAll('prod-a', 'X'), missing.stderr.replaceAll('no-such', 'X'));
    assert.equal(agent.streams, 0);
    const denied = (await events()).filter((e) => e.user === 'bob' && e.outcome === 'refused');
    assert.ok(
      denied.some((e) => e.cluster === 'prod-a' && /do not allow/.test(e.reason ?? '')),
      JSON.stringify(denied),
    );
    // Bob's own cluster goes through.
    const own = await k(await kubeconfig('bob', ['staging-dev'], 'staging-b'), 'get', 'ns', '-o', 'name');
    assert.equal(own.code, 0, own.stderr);
    await agent.settled();
    assert.ok(agent.admitted.length > 0);
    assert.ok(agent.admitted.every((i) => i.person === 'bob' && i.cluster === 'staging-b'));
  });

  test('Impersonate-Group: system:masters from alice is refused with 403 and reaches no agent', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-3', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-3', ['prod-a']);
    const config = await kubeconfig('alice', ['prod-dev'], 'prod-a');
    const r = await k(config, 'get', '--raw', '/api/v1/namespaces', '--as=alice', '--as-group=system:masters');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Forbidden.*impersonating group "system:masters" is not allowed by your kport roles/);
    // Over HTTP/2 a value with spaces or a tab around it is trimmed and checked as HTTP/1.1 does, never dropped unseen.
    const alice = await h.personCert('alice', ['prod-dev']);
    for (const value of [' system:masters ', '\tsystem:masters', 'system:masters ']) {
      const padded = await rawH2(h, alice, '/k/prod-a/api/v1/namespaces', { 'impersonate-group': value });
      assert.equal(padded.status, 403, `${JSON.stringify(value)}: ${padded.text}`);
      assert.match(padded.text, /impersonating group "system:masters" is not allowed/);
    }
    assert.equal(agent.streams, 0);
  });

  test('a cluster no agent serves answers 502 with the sentence naming it, which kubectl prints (discovery included)', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const config = await kubeconfig('alice', ['prod-dev'], 'prod-lonely');
    for (const args of [
      ['get', '--raw', '/api/v1/namespaces'],
      ['get', 'namespaces'],
    ]) {
      const r = await k(config, ...args);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no agent serves prod-lonely right now/, args.join(' '));
    }
    const body = await raw(h, await h.personCert('alice', ['prod-dev']), '/k/prod-lonely/api/v1/namespaces');
    assert.equal(body.status, 502);
    assert.match(body.text, /^no agent serves prod-lonely right now/);
  });

  test('two agents for one cluster: one failing every stream and one killed outright, requests go on', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const broken = testAgent(h, 'agent-broken', { broken: true });
    t.after(() => broken.kill());
    const good = testAgent(h, 'agent-good', { upstream });
    t.after(() => good.kill());
    const doomed = testAgent(h, 'agent-doomed', { upstream });
    t.after(() => doomed.kill());
    await Promise.all(['agent-broken', 'agent-good', 'agent-doomed'].map((id) => h.heartbeat(id, ['prod-a'])));
    const alice = await h.personCert('alice', ['prod-dev']);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      if (i === 5) doomed.kill();
      statuses.push((await raw(h, alice, '/k/prod-a/api/v1/namespaces/team-a')).status);
    }
    assert.deepEqual(statuses, Array(20).fill(200));
    assert.ok(broken.streams > 0, 'the broken agent was tried');
    await good.settled();
    assert.ok(good.admitted.length > 0);
  });

  test('HTTP/1.1 and the cluster SNI name route as the path does', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-4', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-4', ['prod-a']);
    const alice = await h.personCert('alice', ['prod-dev']);
    const h1 = await raw(h, alice, '/k/prod-a/api/v1/namespaces/team-a');
    assert.equal(h1.status, 200, h1.text);
    assert.equal(JSON.parse(h1.text).metadata.name, 'team-a');
    const bySni = await raw(h, alice, '/api/v1/namespaces/team-a', clusterServerName('prod-a'));
    assert.equal(bySni.status, 200, bySni.text);
    const sniConfig = await kubeconfig('alice', ['prod-dev'], 'prod-a', { sni: true });
    const r = await k(sniConfig, 'get', '--raw', '/api/v1/namespaces/team-a');
    assert.equal(r.code, 0, r.stderr);
    // A server name for a cluster bob may not reach: the not-found answer.
    const bob = await h.personCert('bob', ['staging-dev']);
    const hidden = await raw(h, bob, '/api/v1/namespaces', clusterServerName('prod-a'));
    const missing = await raw(h, bob, '/api/v1/namespaces', clusterServerName('no-such'));
    assert.equal(hidden.status, 403);
    assert.equal(missing.status, 403);
    // The answer names the server name asked for, never the cluster behind it: a guess that exists reads as one that does not.
    assert.equal(hidden.text.replace(clusterServerName('prod-a'), 'NAME'), missing.text.replace(clusterServerName('no-such'), 'NAME'));
    assert.doesNotMatch(hidden.text, /prod-a/);
  });

  test("a watch streams events through the tunnel, and cancelling it closes the agent's stream", async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-5', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-5', ['prod-a']);
    const config = await kubeconfig('alice', ['prod-dev'], 'prod-a');
    const child = execFile(kubectl, ['--kubeconfig', config, 'get', 'configmaps', '-n', 'team-a', '--watch', '-o', 'name']);
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c));
    await waitFor('the watch to be open at the agent', async () => agent.open.size > 0, { timeoutMs: 30_000 });
    await run(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), 'create', 'configmap', 'seen-through-tunnel', '-n', 'team-a']);
    await waitFor('the event through the watch', async () => out.includes('configmap/seen-through-tunnel'), { timeoutMs: 30_000 });
    child.kill('SIGKILL');
    await waitFor("the agent's stream to close", async () => agent.open.size === 0, { timeoutMs: 30_000 });
  });

  test('one person connection holds more than 32 watches at once (kubectl, k9s and kube login keep many on one connection): every one sees the next event', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-7', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-7', ['prod-a']);
    const alice = await h.personCert('alice', ['prod-dev']);
    const session = http2Connect(`https://127.0.0.1:${h.port}`, { ca: alice.ca, cert: alice.cert, key: alice.key, servername: 'localhost' });
    t.after(() => session.destroy());
    session.on('error', () => {});
    const WATCHES = 48;
    const outputs = Array.from({ length: WATCHES }, () => ({ status: 0, text: '' }));
    for (const out of outputs) {
      const stream = session.request({ ':path': '/k/prod-a/api/v1/namespaces/team-a/configmaps?watch=1' });
      stream.on('response', (headers) => (out.status = Number(headers[':status'])));
      stream.on('data', (c: Buffer) => (out.text += c));
      stream.on('error', () => {});
    }
    await waitFor(`${WATCHES} watches answered on one connection`, async () => outputs.every((o) => o.status === 200) || undefined, { timeoutMs: 60_000 });
    assert.ok((session.remoteSettings.maxConcurrentStreams ?? Infinity) <= 1000, 'bounded: at most what one agent tunnel carries');
    assert.equal(agent.open.size, WATCHES);
    await run(kubectl, ['--kubeconfig', api.kubeconfig(api.admin), 'create', 'configmap', 'seen-by-every-watch', '-n', 'team-a']);
    await waitFor('the event on every watch', async () => outputs.every((o) => o.text.includes('"seen-by-every-watch"')) || undefined, { timeoutMs: 60_000 });
  });

  test('a lock refuses the very next request and closes the connection; an edit of a stored role that no longer allows the cluster takes effect at the very next request on the same connection', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const agent = testAgent(h, 'agent-8', { upstream });
    t.after(() => agent.kill());
    await h.heartbeat('agent-8', ['prod-a']);
    const storedRole = (env: string) =>
      ({
        kind: 'role',
        version: 'v7',
        metadata: { name: 'stored-prod' },
        spec: { allow: { kubernetes_labels: { env }, kubernetes_groups: ['developers'] } },
      }) as never;
    await upsertResource(h.backend, storedRole('prod'));
    const carol = await h.personCert('carol', ['stored-prod']);
    const open = () => {
      const s = http2Connect(`https://127.0.0.1:${h.port}`, { ca: carol.ca, cert: carol.cert, key: carol.key, servername: 'localhost' });
      t.after(() => s.destroy());
      s.on('error', () => {});
      return s;
    };
    let session = open();
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':path': '/k/prod-a/api/v1/namespaces/team-a' });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
    for (let i = 0; i < 5; i++) assert.equal(await get(), 200);
    const closed = new Promise((resolve) => session.once('close', resolve));
    await lockUser(h.backend, { name: 'carol' }, new Date());
    // Refused at the next request, or already gone: the server closes a locked person's connections.
    const next = await get().catch(() => 'closed');
    assert.ok(next === 403 || next === 'closed', `locked: refused at the next request, not ${next}`);
    await closed;
    await unlockUser(h.backend, 'carol', new Date());
    session = open();
    assert.equal(await get(), 200);
    await upsertResource(h.backend, storedRole('staging'));
    assert.equal(await get(), 403, 'the role no longer allows prod-a: not found at the next request');
    await upsertResource(h.backend, storedRole('prod'));
    assert.equal(await get(), 200);
  });

  test('an upgrade rides a CONNECT stream byte for byte; the recording hook sees it; a refused one reaches no agent', async (t) => {
    if (!havePeer(t, 'kube-apiserver', [BINARIES.kubeApiserver()])) return;
    const wss = new WebSocketServer({ noServer: true });
    const seenPaths: string[] = [];
    const agent = testAgent(h, 'agent-6', {
      upgrade: (req, socket, head) => {
        seenPaths.push(`${req.url} auth=${req.headers.authorization ?? ''} imp=${req.headers['impersonate-user'] ?? ''}`);
        wss.handleUpgrade(req, socket as never, head, (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
      },
    });
    t.after(() => agent.kill());
    await h.heartbeat('agent-6', ['prod-a']);
    const alice = await h.personCert('alice', ['prod-dev']);
    const path = '/api/v1/namespaces/team-a/pods/web/exec?container=c&command=sh&stdin=true&tty=true';
    const ws = new WebSocket(`wss://127.0.0.1:${h.port}/k/prod-a${path}`, ['v5.channel.k8s.io'], {
      ca: alice.ca,
      cert: alice.cert,
      key: alice.key,
      servername: 'localhost',
      headers: { authorization: 'Bearer leaked', 'impersonate-user': 'alice' },
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const payload = Buffer.from([1, 0, 255, 13, 10, 0x41]);
    const echoed = await new Promise<Buffer>((resolve) => {
      ws.once('message', (m) => resolve(m as Buffer));
      ws.send(payload);
    });
    assert.deepEqual(echoed, payload);
    ws.close();
    assert.deepEqual(seenPaths, [`${path} auth= imp=`]);
    const meta = upgrades.at(-1)!;
    assert.equal(meta.person, 'alice');
    assert.equal(meta.pod, 'web');
    assert.equal(meta.namespace, 'team-a');
    assert.equal(meta.container, 'c');
    assert.deepEqual(meta.command, ['sh']);
    assert.deepEqual(meta.subprotocols, ['v5.channel.k8s.io']);
    assert.equal(meta.hostId, 'agent-6');
    await agent.settled();
    assert.equal(agent.admitted.at(-1)!.sessionId, meta.sessionId);
    const streams = agent.streams;
    const refused = new WebSocket(`wss://127.0.0.1:${h.port}/k/prod-a/api/v1/namespaces/team-a/pods/refused-pod/exec?command=sh`, ['v5.channel.k8s.io'], {
      ca: alice.ca,
      cert: alice.cert,
      key: alice.key,
      servername: 'localhost',
    });
    const status = await new Promise<number>((resolve) =>
      refused
        .once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        .once('open', () => resolve(101))
        .once('error', () => resolve(-1)),
    );
    assert.equal(status, 403);
    assert.equal(agent.streams, streams);
  });
});

/** One HTTP/2 GET with a person's certificate and extra headers, sent as given (node:http2 keeps padded values). */
function rawH2(
  h: Harness,
  who: { cert: string; key: string; ca: string },
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`https://127.0.0.1:${h.port}`, { ca: who.ca, cert: who.cert, key: who.key, servername: 'localhost' });
    session.on('error', reject);
    const req = session.request({ ':path': path, ...headers });
    let status = 0;
    let text = '';
    req.on('response', (r) => (status = Number(r[':status'])));
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      session.close();
      resolve({ status, text });
    });
    req.on('error', reject);
  });
}

/** One HTTP/1.1 request with a person's certificate (ALPN http/1.1), by path, optionally by another TLS server name. */
function raw(h: Harness, who: { cert: string; key: string; ca: string }, path: string, servername = 'localhost'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: h.port, path, ca: who.ca, cert: who.cert, key: who.key, servername, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}
