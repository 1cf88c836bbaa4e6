// Two parts of the server on their own, on the in-memory backend (the same contract as sqlite and
// etcd): the audit trail's flood limit, and one backend watch shared by many agents.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WatchEvent } from '../../src/backend/backend.ts';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { WatchCount } from '../../src/server/auth/agent-limits.ts';
import { AgentLeases } from '../../src/server/auth/agent-leases.ts';
import { ServerAudit, sourceOf } from '../../src/server/events/audit.ts';
import { AUDIT_EVENT, type AuditEvent } from '../../src/resources/audit-event.ts';
import { listResources } from '../../src/resources/store.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';

test('audit: refusals from one address are stored at most 120 a minute, the rest counted; allowed events and other addresses are not limited', async () => {
  let now = Date.parse('2026-11-26T10:00:00Z');
  const backend = new MemoryBackend({ now: () => now });
  const lines: string[] = [];
  const audit = new ServerAudit(backend, { log: (l) => lines.push(l), now: () => new Date(now) });
  for (let i = 0; i < 130; i++)
    await audit.record({ type: 'agent.join', outcome: 'refused', reason: 'token expired or not found', remote_addr: `203.0.113.9:${40000 + i}` });
  await audit.record({ type: 'agent.join', outcome: 'refused', reason: 'token expired or not found', remote_addr: '198.51.100.1:5000' });
  await audit.record({ type: 'agent.join', outcome: 'allowed', host_id: 'h', remote_addr: '203.0.113.9:1' });
  const stored = async () => (await backend.list('/resources/audit_event/')).map((i) => JSON.parse(i.value).spec);
  let events = await stored();
  assert.equal(events.filter((e) => e.remote_addr?.startsWith('203.0.113.9') && e.outcome === 'refused').length, 120);
  assert.equal(events.filter((e) => e.remote_addr?.startsWith('198.51.100.1')).length, 1);
  assert.equal(events.filter((e) => e.outcome === 'allowed').length, 1);
  // The next minute: the count of what was dropped is stored with the next refusal.
  now += 61_000;
  await audit.record({ type: 'agent.call', outcome: 'refused', reason: 'x', remote_addr: '203.0.113.9:2' });
  events = await stored();
  assert.ok(
    events.some((e) => e.type === 'audit.suppressed' && /^10 more refused or failed calls/.test(e.reason)),
    JSON.stringify(events.filter((e) => e.type !== 'agent.join')),
  );
  // 120 refusals, the other address, the allowed join, the summary, the next minute's refusal.
  assert.equal(lines.length, 120 + 1 + 1 + 1 + 1, 'the log carries what is stored');
  assert.equal(events.length, lines.length);
});

test('watch hub: agents watching one prefix share one backend watch; each gets every event; the last one out stops it', async () => {
  const backend = new MemoryBackend();
  let opened = 0;
  const watch = backend.watch.bind(backend);
  backend.watch = (prefix: string, signal: AbortSignal) => {
    opened++;
    return watch(prefix, signal);
  };
  const hub = new WatchHub(backend);
  const seen: Record<string, string[]> = { a: [], b: [] };
  const key = (e: WatchEvent) => (e.type === 'put' ? e.item.key : e.key);
  const offA = hub.subscribe('/resources/kube_cluster/', (e) => seen.a!.push(key(e)));
  const offB = hub.subscribe('/resources/kube_cluster/', (e) => seen.b!.push(key(e)));
  await sleep(10);
  await backend.put('/resources/kube_cluster/one', '{}');
  await backend.put('/resources/token/t', '{}');
  await backend.delete('/resources/kube_cluster/one');
  await sleep(10);
  assert.equal(opened, 1);
  assert.deepEqual(seen.a, ['/resources/kube_cluster/one', '/resources/kube_cluster/one']);
  assert.deepEqual(seen.b, seen.a);
  offA();
  await backend.put('/resources/kube_cluster/two', '{}');
  await sleep(10);
  assert.equal(seen.a.length, 2, 'an unsubscribed agent gets nothing more');
  assert.equal(seen.b.at(-1), '/resources/kube_cluster/two');
  offB();
  await backend.put('/resources/kube_cluster/three', '{}');
  await sleep(10);
  assert.equal(seen.b.at(-1), '/resources/kube_cluster/two');
  hub.subscribe('/resources/kube_cluster/', () => {});
  await sleep(10);
  assert.equal(opened, 2, 'a new first subscriber opens a new watch');
  hub.close();
});

test('first contact: a pinned server whose certificate does not name the address dialled is refused before anything is sent, naming the names it has', async () => {
  const { createServer } = await import('node:tls');
  const { createAuthority, generateKeys, issueLeaf, keyPem, certPem, spkiPin } = await import('../../src/pki/certs.ts');
  const { fetchPinnedCA } = await import('../../src/client/server-client.ts');
  const ca = await createAuthority('test CA', 3_600_000);
  const keys = await generateKeys();
  const leaf = await issueLeaf(ca, keys.publicKey, { commonName: 'kport server', usage: 'server', validForMs: 3_600_000, dnsNames: ['kport.example.com'] });
  let received = 0;
  // It speaks HTTP/2 as a kport server does (a server that does not is not one: server-client.ts says so first).
  const server = createServer({ key: await keyPem(keys.privateKey), cert: certPem(leaf) + certPem(ca.cert), ALPNProtocols: ['h2', 'http/1.1'] }, (socket) =>
    socket.on('data', () => received++),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const pin = spkiPin(certPem(ca.cert));
    await assert.rejects(
      fetchPinnedCA({ host: '127.0.0.1', port }, [pin], () => {}),
      /The server's certificate does not name 127\.0\.0\.1 \(it names kport\.example\.com\): nothing was sent; .*proxy_service\.public_addr/,
    );
    await assert.rejects(
      fetchPinnedCA({ host: '127.0.0.1', port }, [`sha256:${'0'.repeat(64)}`], () => {}),
      /does not match teleport\.ca_pin/,
    );
    assert.equal(received, 0, 'no byte of application data reached the server');
  } finally {
    server.close();
  }
});

test('addresses: host:port, [v6]:port, a bare host (agents: port 3080) and :port (servers: every interface)', async () => {
  const { splitHostPort } = await import('../../src/core/host-port.ts');
  const { parseServerAddress } = await import('../../src/client/server-client.ts');
  assert.deepEqual(splitHostPort('kport.example.com:3080'), { host: 'kport.example.com', port: 3080 });
  assert.deepEqual(splitHostPort('[::1]:443'), { host: '::1', port: 443 });
  assert.deepEqual(splitHostPort(':3080'), { host: '', port: 3080 });
  assert.deepEqual(splitHostPort('kport.example.com'), { host: 'kport.example.com' });
  for (const bad of ['a:b:c', 'host:99999', 'https://host:1', 'ho st:1']) assert.equal(splitHostPort(bad), undefined, bad);
  assert.deepEqual(parseServerAddress('kport.example.com'), { host: 'kport.example.com', port: 3080 });
  assert.throws(() => parseServerAddress(':3080'), /is not host:port/);
  assert.throws(() => parseServerAddress('host:0'), /is not host:port/);
});

test('audit: every field copied from a request is cut to 256 characters with its length, and a source may store at most 64 KiB of refusals a minute (issue 18, item 4)', async () => {
  let now = Date.parse('2026-11-26T10:00:00Z');
  const backend = new MemoryBackend({ now: () => now });
  const lines: string[] = [];
  const audit = new ServerAudit(backend, { log: (l) => lines.push(l), now: () => new Date(now) });
  const key = `/resources/token/${'k'.repeat(1 << 20)}`;
  await audit.record({
    type: 'agent.call',
    outcome: 'refused',
    action: `get ${key}`,
    reason: `may not read ${key}`,
    hostname: '\u001b]0;pwned\u0007',
    remote_addr: '203.0.113.9:1',
  });
  const [stored] = await backend.list('/resources/audit_event/');
  assert.ok(stored);
  assert.ok(stored.value.length < 1500, `one event stores ${stored.value.length} bytes`);
  const spec = JSON.parse(stored.value).spec;
  assert.equal(spec.action.length, 256);
  assert.match(spec.action, /^get \/resources\/token\/kkk.*… \(1048597 characters\)$/);
  assert.match(spec.reason, /… \(1048606 characters\)$/);
  assert.ok(!/[\u0000-\u001f]/.test(spec.hostname), 'control characters are not kept');
  assert.ok(
    lines.every((l) => l.length < 1500),
    'nor logged',
  );

  // Many refusals of the largest size: the budget stops them by bytes, well before 120.
  for (let i = 0; i < 120; i++)
    await audit.record({
      type: 'agent.call',
      outcome: 'refused',
      action: `get ${key}`,
      reason: `may not read ${key}`,
      token_name: key,
      hostname: key,
      remote_addr: `203.0.113.9:${i}`,
    });
  for (let i = 0; i < 50; i++) audit.failure(`203.0.113.9:${i}`, `/${'p'.repeat(100_000)} failed: boom`);
  const bytes = (await backend.list('/resources/audit_event/')).reduce((n, i) => n + i.value.length, 0);
  assert.ok(bytes <= 64 * 1024 + 4096, `the source stored ${bytes} bytes in a minute`);
  const logged = lines.reduce((n, l) => n + l.length, 0);
  assert.ok(logged <= 64 * 1024 + 4096, `the source logged ${logged} bytes in a minute`);
  // The next minute says how many were left out.
  now += 61_000;
  await audit.record({ type: 'agent.call', outcome: 'refused', reason: 'x', remote_addr: '203.0.113.9:2' });
  const summary = (await backend.list('/resources/audit_event/')).map((i) => JSON.parse(i.value).spec).find((e) => e.type === 'audit.suppressed');
  assert.match(summary?.reason ?? '', /^\d+ more refused or failed calls in one minute were not stored$/);
});

test('audit: a budget belongs to an IPv4 address or an IPv6 /64', () => {
  assert.equal(sourceOf('203.0.113.9:443'), '203.0.113.9');
  assert.equal(sourceOf('::ffff:203.0.113.9:443'), '203.0.113.9');
  assert.equal(sourceOf('2001:db8:1:2:3:4:5:6:443'), '2001:db8:1:2::/64');
  assert.equal(sourceOf('2001:db8:1:2::9:443'), '2001:db8:1:2::/64');
  assert.equal(sourceOf('2001:db8::1:443'), '2001:db8:0:0::/64');
  assert.equal(sourceOf('::1:443'), '0:0:0:0::/64');
});

test('limits: 16 live leases and 16 open watches per agent; lapsed leases and closed watches make room (issue 18, item 10)', async () => {
  let now = 1_000_000;
  const leases = new AgentLeases(new MemoryBackend({ now: () => now }));
  const first = await leases.grant('h1', 10_000);
  for (let i = 1; i < 16; i++) await leases.grant('h1', 60_000);
  await assert.rejects(leases.grant('h1', 60_000), /agent h1 already holds 16 leases, the most one agent may/);
  await leases.grant('h2', 60_000);
  now += 10_001;
  assert.equal(await leases.keepAlive('h1', first.id), false, 'the lapsed lease is gone');
  await leases.grant('h1', 60_000);
  await assert.rejects(leases.grant('h1', 60_000), /already holds 16 leases/);

  const watches = new WatchCount();
  const leave = Array.from({ length: 16 }, () => watches.enter('h1'));
  assert.throws(() => watches.enter('h1'), /agent h1 already holds 16 watches open, the most one agent may/);
  watches.enter('h2')();
  leave[0]!();
  leave[0]!();
  watches.enter('h1');
  assert.throws(() => watches.enter('h1'), /16 watches/, 'leaving twice counts once');
});

test('ServerAudit.queue: 2,500 request events in one millisecond, past two draws of its random name bytes, all stored under distinct names with 64 random bits each (servers sharing a store cannot clash, issue 29)', async () => {
  const backend = new MemoryBackend();
  const logs: string[] = [];
  const at = new Date('2026-11-29T12:00:00Z');
  const audit = new ServerAudit(backend, { log: (line) => logs.push(line), now: () => at });
  for (let i = 0; i < 2500; i++)
    audit.queue({ type: 'kube.request', outcome: 'allowed', user: 'alice', cluster: 'prod', verb: 'get', status: 200, name: `n${i}` });
  await audit.drain();
  const events = await listResources<AuditEvent>(backend, AUDIT_EVENT);
  assert.deepEqual(
    logs.filter((l) => l.includes('"level":"error"')),
    [],
  );
  assert.equal(events.length, 2500);
  assert.equal(new Set(events.map((e) => e.metadata.name)).size, 2500);
  assert.ok(
    events.every((e) => /^2026-11-29T12:00:00\.000Z-[0-9a-f]{16}$/.test(e.metadata.name)),
    events[0]?.metadata.name,
  );
});
