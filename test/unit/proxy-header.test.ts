import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROXY_HEADER_MAX, parseProxyHeader } from '../../src/server/api/proxy-header.ts';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header as HAProxy's send-proxy-v2 writes it: command, family, addresses, then `tlvs` bytes. */
function v2(command: number, family: number, addresses: Buffer, tlvs = 0): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addresses.length + tlvs);
  return Buffer.concat([SIG, Buffer.from([0x20 | command, family]), len, addresses, Buffer.alloc(tlvs, 0x04)]);
}
const ipv4 = (src: number[], sport: number) => {
  const b = Buffer.alloc(12);
  Buffer.from([...src, 127, 0, 0, 1]).copy(b);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(3080, 10);
  return b;
};
const ipv6 = (src: number[], sport: number) => {
  const b = Buffer.alloc(36);
  for (const [i, g] of src.entries()) b.writeUInt16BE(g, 2 * i);
  b.writeUInt16BE(1, 30);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(3080, 34);
  return b;
};
const TLS_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);

test('a v2 header gives the client of TCP over IPv4 and IPv6, and where TLS begins', () => {
  const four = v2(1, 0x11, ipv4([203, 0, 113, 7], 51234), 20);
  assert.deepEqual(parseProxyHeader(Buffer.concat([four, TLS_HELLO])), {
    kind: 'header',
    length: four.length,
    source: { address: '203.0.113.7', port: 51234, family: 'IPv4' },
  });
  const six = v2(1, 0x21, ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42], 443));
  assert.deepEqual(parseProxyHeader(six), { kind: 'header', length: six.length, source: { address: '2001:db8::42', port: 443, family: 'IPv6' } });
  // A balancer on :: sends IPv4 clients as mapped IPv6: counted as the IPv4 address, not in one shared /64.
  const mapped = v2(1, 0x21, ipv6([0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7107], 9));
  assert.deepEqual((parseProxyHeader(mapped) as { source: unknown }).source, { address: '203.0.113.7', port: 9, family: 'IPv4' });
  assert.deepEqual((parseProxyHeader(Buffer.from('PROXY TCP6 ::FFFF:203.0.113.7 ::1 9 6\r\n')) as { source: unknown }).source, {
    address: '203.0.113.7',
    port: 9,
    family: 'IPv4',
  });
  const full = v2(1, 0x21, ipv6([0x2001, 0xdb8, 1, 2, 3, 4, 5, 6], 1));
  assert.equal((parseProxyHeader(full) as { source: { address: string } }).source.address, '2001:db8:1:2:3:4:5:6');
});

test('every prefix of a header asks for more, never decides early', () => {
  for (const header of [v2(1, 0x11, ipv4([10, 1, 2, 3], 1)), v2(0, 0, Buffer.alloc(0)), Buffer.from('PROXY TCP4 198.51.100.1 127.0.0.1 40000 3080\r\n')])
    for (let n = 1; n < header.length; n++) assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { kind: 'incomplete' }, `prefix of ${n}`);
});

test("a LOCAL header (the balancer's own connection) and v1's UNKNOWN keep the socket's address", () => {
  const local = v2(0, 0x00, Buffer.alloc(0));
  assert.deepEqual(parseProxyHeader(local), { kind: 'header', length: 16 });
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', length: 15 });
});

test('v1 lines for TCP4 and TCP6, checked strictly', () => {
  const line = 'PROXY TCP4 198.51.100.1 127.0.0.1 40000 3080\r\n';
  assert.deepEqual(parseProxyHeader(Buffer.from(`${line}\x16\x03`)), {
    kind: 'header',
    length: line.length,
    source: { address: '198.51.100.1', port: 40000, family: 'IPv4' },
  });
  assert.deepEqual((parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0::1 ::1 5 6\r\n')) as { source: unknown }).source, {
    address: '2001:db8::1',
    port: 5,
    family: 'IPv6',
  });
  for (const bad of [
    'PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n',
    'PROXY TCP4 1.2.3.4 127.0.0.1 65536 2\r\n',
    'PROXY TCP4 1.2.3.4 127.0.0.1 01 2\r\n',
    'PROXY TCP4 1.2.3.4 127.0.0.1 1\r\n',
    'PROXY UDP4 1.2.3.4 127.0.0.1 1 2\r\n',
    'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n',
    'PROXY TCP6 fe80::1%25eth0 ::1 1 2\r\n',
    `PROXY TCP4 ${'1'.repeat(120)}`,
  ])
    assert.equal(parseProxyHeader(Buffer.from(bad)).kind, 'invalid', bad);
});

test('no header, another version, a family without a client, or past the size bound is invalid', () => {
  assert.equal(parseProxyHeader(TLS_HELLO).kind, 'invalid');
  assert.equal(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'invalid');
  const v1Version = v2(1, 0x11, ipv4([1, 2, 3, 4], 1));
  v1Version[12] = 0x11;
  assert.equal(parseProxyHeader(v1Version).kind, 'invalid');
  for (const family of [0x00, 0x12, 0x22, 0x31, 0x32]) assert.equal(parseProxyHeader(v2(1, family, Buffer.alloc(216))).kind, 'invalid', `family ${family}`);
  // Too short for its family's addresses.
  assert.equal(parseProxyHeader(v2(1, 0x21, Buffer.alloc(12))).kind, 'invalid');
  // Declares more than the bound: refused on the 16 bytes, before the rest is buffered.
  assert.equal(parseProxyHeader(v2(1, 0x11, ipv4([1, 2, 3, 4], 1), PROXY_HEADER_MAX).subarray(0, 16)).kind, 'invalid');
  assert.equal(parseProxyHeader(v2(1, 0x11, ipv4([1, 2, 3, 4], 1), PROXY_HEADER_MAX - 28)).kind, 'header');
});
