// addressPort / remoteOf: one way to write address:port in audit events and logs, IPv6 in brackets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressPort, remoteOf } from '../../src/server/call/remote-address.ts';
import { sourceOf } from '../../src/server/events/audit.ts';

test('an IPv6 address is bracketed so its port is not read as a group; a mapped IPv4 address is its IPv4 one; IPv4 and unknown as they are', () => {
  assert.equal(addressPort('2001:db8::5', 40000), '[2001:db8::5]:40000');
  assert.equal(addressPort('::1', 443), '[::1]:443');
  assert.equal(addressPort('::ffff:203.0.113.9', 443), '203.0.113.9:443');
  assert.equal(addressPort('::FFFF:127.0.0.1', 5), '127.0.0.1:5');
  assert.equal(addressPort('::ffff:1:2', 5), '[::ffff:1:2]:5');
  assert.equal(addressPort('fe80::1%eth0', 22), '[fe80::1%eth0]:22');
  assert.equal(addressPort('203.0.113.9', 443), '203.0.113.9:443');
  assert.equal(addressPort(undefined, undefined), '?:?');
  assert.equal(remoteOf({ remoteAddress: '2001:db8:1:2::9', remotePort: 5 }), '[2001:db8:1:2::9]:5');
  assert.equal(remoteOf(undefined), '?:?');
});

test("the audit's per-source budget reads the bracketed form back to the address's /64", () => {
  assert.equal(sourceOf(addressPort('2001:db8::5', 40000)), '2001:db8:0:0::/64');
  assert.equal(sourceOf(addressPort('2001:db8:1:2:3:4:5:6', 443)), '2001:db8:1:2::/64');
  assert.equal(sourceOf(addressPort('::ffff:203.0.113.9', 443)), '203.0.113.9');
  assert.equal(sourceOf(addressPort('203.0.113.9', 443)), '203.0.113.9');
});
