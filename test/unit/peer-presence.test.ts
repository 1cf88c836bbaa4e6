// Proxy peering's presence in the store (src/server/peer/peer-presence.ts, peer-directory.ts) on the
// in-memory backend: a server's record and its agents' tunnel records on its own lease, seen by the
// other servers' directories; a lease that lapsed is granted again with every record rewritten.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBackend } from '../../src/backend/memory.ts';
import { WatchHub } from '../../src/server/cache/watch-hub.ts';
import { PeerDirectory } from '../../src/server/peer/peer-directory.ts';
import { serverKey, tunnelKey } from '../../src/server/peer/peer-keys.ts';
import { PeerPresence } from '../../src/server/peer/peer-presence.ts';
import { waitFor } from '../peers/process.ts';

const log = () => {};

test("a tunnel record is written when an agent's first tunnel opens and deleted when its last closes; the other server sees it, the holder does not route to itself; a closed presence takes everything with it", async () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const a = new PeerDirectory(backend, hub, 'server-a');
  const b = new PeerDirectory(backend, hub, 'server-b');
  const presence = new PeerPresence({ backend, serverId: 'server-b', peerAddr: '127.0.0.1:4000', now: () => new Date(), log });
  try {
    presence.tunnel('early', true);
    await presence.start();
    await Promise.all([a.ready, b.ready]);
    assert.equal(b.server('server-b')?.peer_addr, '127.0.0.1:4000');
    await waitFor('A sees the tunnel opened before the start', async () => a.serversFor('early').length === 1, { timeoutMs: 5000 });
    presence.tunnel('agent-1', true);
    await waitFor('A sees agent-1 on B', async () => a.serversFor('agent-1')[0] === 'server-b' || undefined, { timeoutMs: 5000 });
    assert.deepEqual(b.serversFor('agent-1'), [], 'B reaches its own agents by their tunnels, not through itself');
    presence.tunnel('agent-1', false);
    await waitFor('the record gone', async () => (await backend.get(tunnelKey('agent-1', 'server-b'))) === undefined, { timeoutMs: 5000 });
    await waitFor('A no longer sees agent-1', async () => a.serversFor('agent-1').length === 0, { timeoutMs: 5000 });
    // Up, down, up at once: the writes land in order, so the agent ends up announced.
    presence.tunnel('agent-2', true);
    presence.tunnel('agent-2', false);
    presence.tunnel('agent-2', true);
    await waitFor('agent-2 announced', async () => a.serversFor('agent-2').length === 1, { timeoutMs: 5000 });
    await presence.close();
    assert.equal(await backend.get(serverKey('server-b')), undefined);
    assert.deepEqual(await backend.list('/tunnels/'), []);
    await waitFor('A no longer routes to B', async () => a.serversFor('agent-2').length === 0 && a.server('server-b') === undefined, { timeoutMs: 5000 });
  } finally {
    await presence.close();
    a.close();
    b.close();
    hub.close();
  }
});

test('a lease that lapsed (the store out of reach past its TTL) is granted again and the server and tunnel records are written again on it', async () => {
  let now = Date.now();
  const backend = new MemoryBackend({ now: () => now });
  const presence = new PeerPresence({ backend, serverId: 's', peerAddr: 'h:1', now: () => new Date(now), log, ttlMs: 1000, keepAliveMs: 20 });
  try {
    await presence.start();
    presence.tunnel('agent', true);
    await waitFor('the tunnel record', async () => (await backend.get(tunnelKey('agent', 's'))) !== undefined, { timeoutMs: 5000 });
    const before = (await backend.get(serverKey('s')))!.lease;
    now += 5000;
    const after = await waitFor(
      'a new lease with both records',
      async () => {
        const server = await backend.get(serverKey('s'));
        const tunnel = await backend.get(tunnelKey('agent', 's'));
        return server && tunnel && server.lease !== before && tunnel.lease === server.lease ? server.lease : undefined;
      },
      { timeoutMs: 5000 },
    );
    assert.notEqual(after, before);
  } finally {
    await presence.close();
  }
});

test("an agent that redialled is reached through the server with its newest tunnel record first, while a dead server's record lingers until its lease ends", async () => {
  const backend = new MemoryBackend();
  const hub = new WatchHub(backend);
  const a = new PeerDirectory(backend, hub, 'server-a');
  try {
    for (const id of ['server-b', 'server-c', 'server-d'])
      await backend.put(serverKey(id), JSON.stringify({ server_id: id, peer_addr: '127.0.0.1:1', started: new Date().toISOString() }));
    // The agent's tunnel was on C (C died, its record not yet expired), then on D, then on B.
    for (const id of ['server-c', 'server-d', 'server-b']) await backend.put(tunnelKey('agent-1', id), '');
    await a.ready;
    await waitFor('A sees the three records', async () => a.serversFor('agent-1').length === 3 || undefined, { timeoutMs: 5000 });
    for (let i = 0; i < 20; i++) assert.deepEqual(a.serversFor('agent-1'), ['server-b', 'server-d', 'server-c']);
  } finally {
    a.close();
  }
});
