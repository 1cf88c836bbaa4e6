// A /v1/backend body is decoded by its schema (docs/style.md 23) and refused as before when it is not a call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../src/api/errors.ts';
import { parseCall } from '../../src/server/auth/backend-call.ts';

// (A string longer than a body cannot arrive: the route's body limit refuses the body first, 413.)

test('backend calls are accepted as they are, less any field a call does not have', () => {
  const cases: unknown[] = [
    { op: 'get', key: '/resources/kube_cluster/a' },
    { op: 'list', prefix: '/resources/kube_cluster/' },
    { op: 'watch', prefix: '/resources/kube_cluster/' },
    { op: 'put', key: 'k', value: 'v', ttl_ms: 1000 },
    { op: 'create', key: 'k', value: 'v', lease: 'l1' },
    { op: 'cas', key: 'k', value: 'v', revision: 3, fence: { key: 'f', value: 'h/l' } },
    { op: 'delete', key: 'k' },
    { op: 'delete', key: 'k', revision: 2 },
    { op: 'grant', ttl_ms: 15000 },
    { op: 'keepalive', lease: 'l1' },
    { op: 'revoke', lease: 'l1' },
  ];
  for (const body of cases) assert.deepEqual(parseCall(body), body);
  assert.deepEqual(parseCall({ op: 'get', key: 'k', extra: 'dropped' }), { op: 'get', key: 'k' });
});

test('a body that is not a backend call is refused, naming its op', () => {
  const cases: Array<[unknown, string]> = [
    [null, 'null'],
    ['get', 'null'],
    [[], 'null'],
    [{ op: 'nope', key: 'k' }, '"nope"'],
    [{ op: 'get' }, '"get"'],
    [{ op: 'get', key: 5 }, '"get"'],
    [{ op: 'list', key: 'k' }, '"list"'],
    [{ op: 'put', key: 'k' }, '"put"'],
    [{ op: 'put', key: 'k', value: 'v', ttl_ms: '5' }, '"put"'],
    [{ op: 'put', key: 'k', value: 'v', lease: null }, '"put"'],
    [{ op: 'put', key: 'k', value: 'v', fence: { key: 'f' } }, '"put"'],
    [{ op: 'cas', key: 'k', value: 'v' }, '"cas"'],
    [{ op: 'delete', key: 'k', revision: '1' }, '"delete"'],
    [{ op: 'grant' }, '"grant"'],
    [{ op: 'keepalive' }, '"keepalive"'],
  ];
  for (const [body, op] of cases) {
    assert.throws(
      () => parseCall(body),
      (err: unknown) => err instanceof ApiError && err.status === 400 && err.code === 'bad_request' && err.message === `not a backend call: ${op}`,
      JSON.stringify(body)?.slice(0, 80),
    );
  }
});
