// TunnelRegistry's per-person share of an agent's tunnel (issue 29, attack 3 finding 1): counted from
// the stream's identity header (read, not verified: the agent verifies it), over the loopback tunnel
// (the same HTTP/2 roles as a reverse tunnel). The integration test (peering-bounds.test.ts) shows it
// across two servers.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ClientHttp2Stream } from 'node:http2';
import { test } from 'node:test';
import { openLoopbackTunnel } from '../../src/reversetunnel/loopback-tunnel.ts';
import { IDENTITY_HEADER } from '../../src/reversetunnel/protocol.ts';
import { personOf, personStreamShare, TunnelRegistry } from '../../src/reversetunnel/tunnel-registry.ts';

const token = (claims: unknown) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

test("personOf reads the identity's sub from object or flat headers; anything else is no person", () => {
  assert.equal(personOf({ [IDENTITY_HEADER]: token({ sub: 'alice' }) }), 'alice');
  assert.equal(personOf([':method', 'GET', 'Kport-Identity', token({ sub: 'bob', aud: 'x' })]), 'bob');
  for (const bad of [
    undefined,
    '',
    'garbage',
    'a.b',
    'a.%%%.c',
    'a.b.c.d',
    token({ sub: 7 }),
    token({ sub: '' }),
    token(null),
    token(['alice']),
    `e30.${Buffer.from('{"sub":').toString('base64url')}.x`,
  ])
    assert.equal(personOf(bad === undefined ? {} : { [IDENTITY_HEADER]: bad }), undefined, String(bad));
  assert.equal(personOf({ [IDENTITY_HEADER]: [token({ sub: 'alice' })] as never }), undefined, 'a list is not one identity');
});

test("one person holds at most their share of an agent's tunnel ('busy' past it), others and streams without a person still get streams, and a closed stream frees its place", async () => {
  const tunnels = new TunnelRegistry();
  const close = openLoopbackTunnel(tunnels, 'agent', (session) => {
    session.on('stream', (stream) => stream.respond({ ':status': 200 }));
  });
  try {
    const [session] = tunnels.sessions('agent');
    if (!session!.remoteSettings?.maxConcurrentStreams) await once(session!, 'remoteSettings');
    const share = personStreamShare(session!);
    // The loopback's agent side allows node's default 100 streams: the server uses 90, a person 27.
    assert.equal(share, 27);
    assert.equal(personStreamShare({ remoteSettings: { maxConcurrentStreams: 1000 } } as never), 256, "of a kport agent's 1,000 (900 used): 256");
    assert.equal(personStreamShare({ remoteSettings: { maxConcurrentStreams: 2 } } as never), 1, 'at least one');
    const as = (sub: unknown) => tunnels.request('agent', [':method', 'GET', ':path', '/', IDENTITY_HEADER, token({ sub })]);
    const alices: ClientHttp2Stream[] = [];
    for (let i = 0; i < share; i++) {
      const s = as('alice');
      assert.ok(s && s !== 'busy', `alice's stream ${i}`);
      alices.push(s);
    }
    assert.equal(as('alice'), 'busy');
    assert.equal(tunnels.personStreams('agent', 'alice'), share);
    const bob = as('bob');
    assert.ok(bob && bob !== 'busy', "bob's stream");
    const nobody = tunnels.request('agent', { ':method': 'GET', ':path': '/', [IDENTITY_HEADER]: 'not.a-jws' });
    assert.ok(nobody && nobody !== 'busy', 'a malformed identity is no person, counted against none');
    alices[0]!.close();
    await once(alices[0]!, 'close');
    assert.equal(tunnels.personStreams('agent', 'alice'), share - 1);
    const again = as('alice');
    assert.ok(again && again !== 'busy', 'her freed place');
    for (const s of [...alices, bob as ClientHttp2Stream, nobody as ClientHttp2Stream, again as ClientHttp2Stream]) s.close();
  } finally {
    close();
  }
});
