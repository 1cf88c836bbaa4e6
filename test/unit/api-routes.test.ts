// The API declared once (src/api/, issue 28): the route table's invariants, the one error class,
// and that the clients and the server take their paths and codes from there, not from strings.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_ERROR_CODES, ApiError } from '../../src/api/errors.ts';
import { findRoute, routes, type Route } from '../../src/api/routes.ts';
import { backendCall, joinRequest, localLoginRequest, ownMessage } from '../../src/api/wire.ts';

const SRC = new URL('../../src/', import.meta.url).pathname;
const all = Object.entries(routes) as [string, Route][];

test('each route is one method and path, under /v1/, and findRoute finds it by both', () => {
  const seen = new Set<string>();
  for (const [name, route] of all) {
    assert.match(route.path, /^\/v1\/[a-z/]+$/, name);
    const key = `${route.method} ${route.path}`;
    assert.ok(!seen.has(key), `${key} twice`);
    seen.add(key);
    assert.equal(findRoute(route.method, route.path)?.name, name);
  }
  assert.equal(findRoute('GET', routes.join.path), undefined, 'a join is a POST only');
  assert.equal(findRoute('POST', '/v1/nothing'), undefined);
});

test("a call without a certificate is rate-limited and read against the strangers' budget; one with a certificate names who may make it", () => {
  for (const [name, route] of all) {
    if (route.callers === 'anyone') {
      if (route.method === 'POST') {
        assert.notEqual(route.rate, 'none', `${name}: a stranger's POST is counted per source address`);
        assert.equal(route.body?.budget, 'unauthenticated', name);
      }
    } else {
      assert.ok(route.callers.agent || route.callers.person, `${name}: callers`);
      assert.equal(route.rate, 'none', name);
      assert.equal(route.body?.budget, 'caller', name);
    }
  }
  assert.deepEqual(routes.backend.callers, { agent: ['discovery', 'kube'], person: true });
  assert.deepEqual(routes.audit.callers, { person: { resource: 'audit', verb: 'list' } });
  assert.equal(routes.renew.callers === 'anyone' ? undefined : routes.renew.callers.person, undefined, 'a person does not renew');
});

test('the audit event of a refusal comes from the route: logins are user.login, a join agent.join, a call by whom it was made', () => {
  for (const name of ['inviteBegin', 'inviteFinish', 'localLogin', 'oidcBegin', 'oidcFinish', 'oidcCallback'] as const)
    assert.equal(routes[name].audit.refused, 'user.login', name);
  assert.deepEqual(routes.join.audit.refused, { person: 'user.call', other: 'agent.join' });
  assert.deepEqual(routes.renew.audit.refused, { person: 'user.call', other: 'agent.renew' });
  assert.deepEqual(routes.users.audit.refused, { person: 'user.call', other: 'agent.call' });
});

test("ApiError: the status is the code's; a code with no one status takes the thrower's; the exit code follows the status", () => {
  assert.equal(new ApiError('forbidden', 'no').status, 403);
  assert.equal(new ApiError('forbidden', 'no').exitCode, 4);
  assert.equal(new ApiError('bad_request', 'no').exitCode, 2);
  assert.equal(new ApiError('no_such_user', 'no').exitCode, 1);
  assert.equal(new ApiError('oidc_busy', 'busy', { status: 429 }).status, 429);
  const refused = new ApiError('login_failed', 'wrong', { user: 'alice', reason: 'no such local user' });
  assert.deepEqual([refused.user, refused.reason, refused.tokenName], ['alice', 'no such local user', undefined]);
  for (const code of [
    'cert_expired',
    'token_invalid',
    'role_not_allowed',
    'key_in_use',
    'renew_too_soon',
    'fenced_out',
    'lease_expired',
    'agent_removed',
    'not_found',
  ])
    assert.ok(API_ERROR_CODES.includes(code as never), code);
});

test("ApiError.fromWire: a known code is kept with the answer's status; an unknown one reads as unknown", () => {
  const known = ApiError.fromWire(409, { code: 'key_in_use', message: 'this key already joined' });
  assert.deepEqual([known.code, known.status, known.message], ['key_in_use', 409, 'this key already joined']);
  const other = ApiError.fromWire(418, { code: 'teapot', message: 'short and stout' });
  assert.deepEqual([other.code, other.status, other.message], ['unknown', 418, 'short and stout']);
  assert.equal(ApiError.fromWire(502, undefined).message, 'HTTP 502');
});

test("a join's malformed fields are said as the server always said them", () => {
  const first = (body: unknown) => {
    const parsed = joinRequest.safeParse(body);
    assert.ok(!parsed.success);
    const issue = parsed.error.issues[0]!;
    assert.ok(ownMessage(issue as never), issue.message);
    return issue.message;
  };
  const ok = { token: 't', roles: ['discovery'], hostname: 'h', csr: 'c' };
  assert.equal(first({}), 'a join needs a token');
  assert.equal(first({ ...ok, token: '   ' }), 'a join needs a token');
  assert.equal(first({ ...ok, roles: [] }), 'a join needs the roles it asks for');
  assert.equal(first({ ...ok, roles: ['discovery', 7] }), 'a join needs the roles it asks for');
  assert.equal(first({ ...ok, roles: ['proxy'] }), 'kport agents join as discovery or kube, not proxy');
  assert.equal(first({ ...ok, hostname: '' }), 'a join needs the agent hostname');
  assert.equal(first({ ...ok, csr: 'x'.repeat(16_385) }), 'a join needs a certificate request');
  assert.equal(first({ ...ok, discovery_group: 5 }), 'discovery group "5" is not a valid name');
  assert.ok(joinRequest.safeParse(ok).success);
});

test("a login's fields are lenient: a malformed one reaches the handler as absent, to be refused as a wrong one is", () => {
  const login = localLoginRequest.parse({ user: 5, password: ['x'], totp_code: '123456' });
  assert.deepEqual([login.user, login.password, login.totp_code, login.csr], [undefined, undefined, '123456', undefined]);
  assert.deepEqual(localLoginRequest.parse(null), {});
  assert.ok(!backendCall.safeParse({ op: 'get' }).success, 'a get names its key');
  assert.ok(!backendCall.safeParse({ op: 'drop', key: '/' }).success);
  assert.ok(backendCall.safeParse({ op: 'cas', key: '/k', value: 'v', revision: 3, fence: { key: '/f', value: 'me' } }).success);
});

function files(dir: string): string[] {
  return readdirSync(join(SRC, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('nothing outside src/api names an API path: every one comes from the route table (the tunnel, no route, declares its path once in reversetunnel/protocol.ts)', () => {
  for (const file of files('.').filter((f) => !f.startsWith('api/') && f !== 'reversetunnel/protocol.ts')) {
    // Comments may name a route's path; the code may not.
    const text = readFileSync(join(SRC, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|\s)\/\/.*$/gm, '');
    assert.doesNotMatch(text, /['"`]\/v1\//, file);
  }
});

test('kport calls routes: the unchecked call by path (ServerClient.rawCall) is for tests of hostile calls, and no src/ code makes one', () => {
  const callers = files('.').filter((f) => /\.rawCall\b/.test(readFileSync(join(SRC, f), 'utf8')));
  assert.deepEqual(callers, []);
});

test('src/api is the low layer: it imports nothing from the server, the clients or the commands', () => {
  for (const file of files('api')) {
    const imports = [...readFileSync(join(SRC, file), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
    for (const spec of imports) assert.doesNotMatch(spec, /\/(server|client|commands)\//, `${file} imports ${spec}`);
  }
});

test("no client decides by a refusal's text: they switch on its code", () => {
  for (const file of [...files('client'), ...files('join')]) {
    const text = readFileSync(join(SRC, file), 'utf8');
    assert.doesNotMatch(text, /(err|error|refused|reason)\.message\.(startsWith|includes)\(|\.test\(`\$\{err\.code\} \$\{err\.message\}`\)/, file);
  }
  assert.doesNotMatch(readFileSync(join(SRC, 'server/auth/join.ts'), 'utf8'), /reason\.startsWith/);
});
