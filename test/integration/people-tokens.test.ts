// Tokens made by people through a real `kport server start`: `kport tokens add` as a logged-in
// editor (the CLI makes the token and sends its verifier), and the records the server refuses when
// a person hand-writes them over /v1/backend (raw node:http2 with the person's certificate).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SqliteBackend } from '../../src/backend/sqlite.ts';
import { addUser } from '../../src/people/users.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { listResources } from '../../src/resources/store.ts';
import { MAX_CHOSEN_TOKENS } from '../../src/tokens/tokens.ts';
import { invitedPerson } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { keyAndCsr, post, totpAt } from '../helpers/person.ts';

let server: TestServer;
let store: SqliteBackend;
const DAY = 86_400_000;

async function enroll(name: string, roles: string[]): Promise<{ cert: string; key: string }> {
  const { invite } = await addUser(store, { name, roles }, new Date());
  const begun = await post(server.port, '/v1/login/invite/begin', { invite });
  assert.equal(begun.status, 200, JSON.stringify(begun.body));
  const { key, csr } = await keyAndCsr(name);
  const done = await post(server.port, '/v1/login/invite/finish', {
    invite,
    password: 'correct horse battery staple',
    totp_code: totpAt(begun.body.totp_secret, Date.now()),
    csr,
  });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return { cert: done.body.cert, key };
}

/** A token record as `kport tokens add` writes it, with `change` applied, and the call that creates it. */
function tokenCall(change: (t: any) => void = () => {}, ttlMs = 3_600_000): { op: string; key: string; value: string; ttl_ms: number } {
  const token: any = {
    kind: 'token',
    version: 'v2',
    metadata: { name: `tok-${randomBytes(8).toString('hex')}`, expires: new Date(Date.now() + ttlMs).toISOString() },
    spec: { roles: ['Discovery'], verifier: `scrypt$16384$8$1$${randomBytes(16).toString('base64url')}$${randomBytes(32).toString('base64url')}` },
  };
  change(token);
  return { op: 'create', key: `/resources/token/${token.metadata.name}`, value: JSON.stringify(token), ttl_ms: ttlMs };
}

describe('people and join tokens at a real server', { timeout: 240_000 }, () => {
  before(async () => {
    server = await startServer();
    store = await SqliteBackend.open(join(server.dir, 'data', 'kport.db'));
  });
  after(async () => {
    await store?.close();
    await server?.stop();
  });

  test("an editor's kport tokens add through the server prints the secret, the server's CA pin and address, and an agent joins with it", async () => {
    const ed = await invitedPerson(server, 'ed', ['editor']);
    const res = await ed.kport(['tokens', 'add', '--type=discovery']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const out = String(res.stdout);
    const secret = /The invite token: (\S+)/.exec(out)?.[1];
    assert.ok(secret, out);
    assert.match(out, new RegExp(`CA pin: ${server.pin}`));
    assert.ok(out.includes(`proxy_server: ${server.address}, ca_pin: "${server.pin}"`), out);
    const json = await ed.kport(['tokens', 'add', '--type=kube', '--format=json']);
    assert.equal(json.exitCode, 0, String(json.stderr));
    assert.equal(JSON.parse(String(json.stdout)).ca_pin, server.pin);
    const joined = await post(server.port, '/v1/join', {
      token: secret,
      roles: ['discovery'],
      hostname: 'h1',
      csr: await createCsr(await generateKeys(), 'h1'),
    });
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    assert.ok(joined.body.cert && joined.body.host_id);
  });

  test('a token record a person writes by hand is stored only as kport tokens add makes it; each other shape is refused and nothing is stored', async () => {
    const carol = await enroll('carol', ['editor']);
    const write = (call: unknown) => post(server.port, '/v1/backend', call, carol);
    const ok = tokenCall((t) => (t.spec.uses_remaining = 3));
    assert.equal((await write(ok)).status, 200, 'the shape tokens add writes is stored');
    const bad: Array<[string, ReturnType<typeof tokenCall>, RegExp]> = [
      ['no expiry', tokenCall((t) => delete t.metadata.expires), /no expiry/],
      ['expiry in 2099', tokenCall((t) => (t.metadata.expires = '2099-01-01T00:00:00.000Z')), /expires at 2099/],
      ['a TTL past 30 days', tokenCall(() => {}, 31 * DAY), /TTL other than up to 30 days/],
      ['no TTL', { ...tokenCall(), ttl_ms: undefined as unknown as number }, /TTL/],
      ['roles Admin, Discovery', tokenCall((t) => (t.spec.roles = ['Admin', 'Discovery'])), /grants roles/],
      ['no roles', tokenCall((t) => (t.spec.roles = [])), /grants roles/],
      [
        'name zzz',
        (() => {
          const c = tokenCall((t) => (t.metadata.name = 'zzz'));
          return { ...c, key: '/resources/token/zzz' };
        })(),
        /tok-<16 hex digits>/,
      ],
      ['scrypt N=2', tokenCall((t) => (t.spec.verifier = t.spec.verifier.replace('scrypt$16384$', 'scrypt$2$'))), /verifier/],
      ['a short hash', tokenCall((t) => (t.spec.verifier = `scrypt$16384$8$1$${randomBytes(16).toString('base64url')}$aGFzaA`)), /verifier/],
      ['a SHA-256 hash instead', tokenCall((t) => ((t.spec.hash = 'a'.repeat(64)), delete t.spec.verifier)), /spec fields|verifier/],
      ['uses 0', tokenCall((t) => (t.spec.uses_remaining = 0)), /uses_remaining/],
      ['uses 1.5', tokenCall((t) => (t.spec.uses_remaining = 1.5)), /uses_remaining/],
    ];
    for (const [what, call, why] of bad) {
      const res = await write(call);
      assert.equal(res.status, 403, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, why, what);
      assert.match(res.body.error.message, /kport tokens add/, what);
      assert.equal(await store.get(call.key), undefined, what);
    }
    // Create-only: the stored token cannot be changed into any of those.
    const current = await store.get(ok.key);
    const rewrite = await write({
      op: 'cas',
      key: ok.key,
      value: tokenCall((t) => ((t.metadata.name = JSON.parse(ok.value).metadata.name), (t.metadata.expires = '2099-01-01T00:00:00.000Z'))).value,
      revision: current!.revision,
    });
    assert.equal(rewrite.status, 403);
    assert.equal((await store.get(ok.key))!.value, ok.value);
  });

  test(`at most ${MAX_CHOSEN_TOKENS} chosen-value tokens live, counted at the server: the next hand-written one is refused`, async () => {
    const dora = await enroll('dora', ['editor']);
    const chosen = () => tokenCall((t) => (t.spec.chosen = true));
    const live = async () => (await listResources<any>(store, 'token')).filter((t) => t.spec.chosen).length;
    assert.equal(await live(), 0);
    // At once, so two writes that each counted room would both get in without the server's ordering.
    const writes = await Promise.all(Array.from({ length: MAX_CHOSEN_TOKENS + 3 }, () => post(server.port, '/v1/backend', chosen(), dora)));
    assert.equal(writes.filter((w) => w.status === 200).length, MAX_CHOSEN_TOKENS, JSON.stringify(writes.map((w) => w.status)));
    assert.equal(await live(), MAX_CHOSEN_TOKENS);
    const refused = writes.find((w) => w.status === 403);
    assert.match(refused!.body.error.message, /chosen value .* the most kport keeps/);
  });
});
