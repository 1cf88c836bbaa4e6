// The server's dispatch by the route table (src/server/api/router.ts, issue 28), against a real
// `kport server start`: a call its caller may not make is refused with the sentence it always had
// and audited with the route's event type, a malformed request names what is wrong, and the typed
// client reads each answer with its route's schema.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiError } from '../../src/api/errors.ts';
import { routes } from '../../src/api/routes.ts';
import { currentProfile } from '../../src/client/profile.ts';
import { ServerClient } from '../../src/client/server-client.ts';
import { createCsr, generateKeys } from '../../src/pki/certs.ts';
import { invitedPerson } from '../helpers/login.ts';
import { auditEvents, joinByHand, pinnedCa, startServer, type TestServer } from '../helpers/network.ts';

describe('the API router', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let ca: string;
  let agent: ServerClient;
  let hostId: string;
  let person: ServerClient;
  const anonymous = () => new ServerClient({ host: '127.0.0.1', port: server.port }, { ca });

  before(async () => {
    server = await startServer();
    ca = await pinnedCa(server);
    const joined = await joinByHand(server, ca, { hostname: 'routed' });
    hostId = joined.host_id;
    agent = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: joined.cert, key: joined.key });
    const erin = await invitedPerson(server, 'erin', ['editor', 'auditor']);
    const profile = currentProfile(join(erin.home, '.kport'));
    assert.ok(profile?.credential, 'erin has a profile');
    person = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca: profile.ca, cert: profile.credential.cert, key: profile.credential.key });
  });
  after(async () => {
    agent?.close();
    person?.close();
    await server?.stop();
  });

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail('the server answered'),
      (err: unknown) => (assert.ok(err instanceof ApiError, String(err)), err),
    );

  test('the typed client takes the path from the route and reads the answer with its schema', async () => {
    const who = await person.call(routes.whoami, {});
    assert.equal(who.user, 'erin');
    assert.deepEqual(who.roles, ['editor', 'auditor']);
    const listed = await agent.call(routes.backend, { op: 'list', prefix: '/resources/kube_cluster/' });
    assert.ok(Array.isArray(listed.items) && typeof listed.revision === 'number');
    const trail = await person.call(routes.audit, { user: 'erin' });
    assert.ok(trail.events.length > 0 && typeof trail.omitted === 'number');
  });

  test("a call its caller may not make: the sentence it always had, audited with the route's event type", async () => {
    const renewing = await refusal(person.call(routes.renew, { csr: await createCsr(await generateKeys(), 'erin') }));
    assert.deepEqual([renewing.status, renewing.code, renewing.message], [403, 'forbidden', 'a user certificate is not renewed: run kport login again']);
    const users = await refusal(agent.call(routes.users, { op: 'ls' }));
    assert.deepEqual(
      [users.status, users.code, users.message],
      [403, 'forbidden', "/v1/users is a person's call: it needs a user certificate from kport login, not an agent's host certificate"],
    );
    const nothing = await refusal(agent.rawCall('/v1/nothing', {}));
    assert.deepEqual([nothing.status, nothing.code, nothing.message], [404, 'not_found', 'no such API call: /v1/nothing']);
    const stranger = anonymous();
    const unauthenticated = await refusal(stranger.call(routes.whoami, {}));
    stranger.close();
    assert.deepEqual([unauthenticated.status, unauthenticated.code], [401, 'unauthenticated']);

    const refused = (await auditEvents(server)).map((e) => e.spec as typeof e.spec & { user?: string }).filter((e) => e.outcome === 'refused');
    const renewEvent = refused.find((e) => e.reason === renewing.message);
    assert.deepEqual([renewEvent?.type, renewEvent?.user, renewEvent?.action], ['user.call', 'erin', '/v1/renew']);
    const usersEvent = refused.find((e) => e.reason === users.message);
    assert.deepEqual([usersEvent?.type, usersEvent?.host_id, usersEvent?.action], ['agent.call', hostId, 'ls']);
    assert.ok(!refused.some((e) => /no such API call/.test(e.reason ?? '')), 'an unknown call is not audited');
  });

  test("a malformed request is a 400 that says what is wrong, audited as the route's refusal", async () => {
    const joiner = anonymous();
    try {
      const token = await server.token('discovery');
      const csr = await createCsr(await generateKeys(), 'x');
      const group = await refusal(joiner.rawCall('/v1/join', { token, roles: ['discovery'], hostname: 'x', csr, discovery_group: 5 }));
      assert.deepEqual([group.status, group.code, group.message], [400, 'bad_request', 'discovery group "5" is not a valid name']);
      const roles = await refusal(joiner.rawCall('/v1/join', { token, roles: ['proxy'], hostname: 'x', csr }));
      assert.equal(roles.message, 'kport agents join as discovery or kube, not proxy');
      const refused = (await auditEvents(server)).map((e) => e.spec).filter((e) => e.outcome === 'refused' && e.reason === group.message);
      assert.deepEqual(
        refused.map((e) => e.type),
        ['agent.join'],
      );
    } finally {
      joiner.close();
    }
    const call = await refusal(agent.rawCall('/v1/backend', { op: 'get' }));
    assert.deepEqual([call.status, call.code, call.message], [400, 'bad_request', 'not a backend call: "get"']);
  });
});
