// An editor logged in to a real `kport server start` removes agents through the server (the server
// removes what the agent said about itself and audits it as the person); the agent's next call is
// refused. An `access` person's removal is refused with the server's sentence, and nothing changes.
import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { ApiError } from '../../src/api/errors.ts';
import { ServerClient } from '../../src/client/server-client.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { auditEvents, joinByHand, pinnedCa, startServer, type TestServer } from '../helpers/network.ts';

describe('people: agents rm through the server', { concurrency: false, timeout: 240_000 }, () => {
  let server: TestServer;
  let ca: string;
  let erin: Person;
  let bob: Person;
  const clients: ServerClient[] = [];

  before(async () => {
    server = await startServer();
    ca = await pinnedCa(server);
    erin = await invitedPerson(server, 'erin', ['editor']);
    bob = await invitedPerson(server, 'bob', ['access']);
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  /** A discovery agent joined with a token, as `kport discover run` joins: its client holds its host certificate. */
  async function joinedAgent(hostname: string): Promise<{ hostId: string; client: ServerClient }> {
    const issued = await joinByHand(server, ca, { hostname });
    const client = new ServerClient({ host: '127.0.0.1', port: server.port }, { ca, cert: issued.cert, key: issued.key });
    clients.push(client);
    await client.rawCall('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' });
    return { hostId: issued.host_id, client };
  }

  async function refusedCall(client: ServerClient): Promise<ApiError> {
    try {
      await client.rawCall('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' });
    } catch (err) {
      if (err instanceof ApiError) return err;
      throw err;
    }
    assert.fail("the removed agent's call was answered");
  }

  const agentIds = async () => {
    const res = await server.kport(['get', 'agent', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    return (JSON.parse(String(res.stdout)) as Array<{ metadata: { name: string } }>).map((a) => a.metadata.name).sort();
  };

  test('an editor lists agents through the server (agents ls, get agent, get agent/ID) and sees no credential hash', async () => {
    const agent = await joinedAgent('listed');
    const ls = await erin.kport(['agents', 'ls', '--format=json']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));
    const listed = JSON.parse(String(ls.stdout)) as Array<{ metadata: { name: string }; spec: Record<string, unknown> }>;
    assert.ok(
      listed.some((a) => a.metadata.name === agent.hostId),
      String(ls.stdout),
    );
    assert.ok(listed.every((a) => a.spec.credential_hash === undefined));
    for (const args of [
      ['get', 'agent', '-o', 'json'],
      ['get', `agent/${agent.hostId}`, '-o', 'json'],
      ['agents', 'ls'],
    ]) {
      const res = await erin.kport(args);
      assert.equal(res.exitCode, 0, `${args.join(' ')}: ${res.stderr}`);
      assert.match(String(res.stdout), new RegExp(agent.hostId), args.join(' '));
      assert.doesNotMatch(String(res.stdout), /credential_hash/, args.join(' '));
    }
  });

  test("an access person's agents rm is refused with the server's sentence, and the agent keeps working", async () => {
    const agent = await joinedAgent('kept');
    for (const args of [
      ['agents', 'rm', agent.hostId],
      ['rm', `agent/${agent.hostId}`],
    ]) {
      const res = await bob.kport(args);
      assert.equal(res.exitCode, 4, String(res.stderr));
      assert.equal(
        String(res.stderr).trim(),
        `ERROR: The kport server at ${server.address} refused: user bob (access) may not delete agent resources (no role allows it).`,
      );
    }
    assert.ok((await agentIds()).includes(agent.hostId));
    await agent.client.rawCall('/v1/backend', { op: 'list', prefix: '/resources/kube_cluster/' });
  });

  test("an editor's agents rm removes the agent through the server: its next call is refused, the removal is audited as the editor", async () => {
    const agent = await joinedAgent('gone');
    const res = await erin.kport(['agents', 'rm', agent.hostId]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal(String(res.stdout), `agent ${agent.hostId} has been removed; its next call to the server is refused and it stops.`);
    assert.equal(String(res.stderr), '');
    const refusal = await refusedCall(agent.client);
    assert.equal(refusal.code, 'agent_removed');
    assert.ok(!(await agentIds()).includes(agent.hostId));
    const removal = (await auditEvents(server)).filter((e) => e.spec.type === 'agent.remove' && e.spec.host_id === agent.hostId);
    assert.equal(removal.length, 1);
    assert.equal((removal[0]!.spec as { user?: string }).user, 'erin');
    assert.equal(removal[0]!.spec.reason, 'removed by erin');

    // Again: there is no such agent now.
    const again = await erin.kport(['agents', 'rm', agent.hostId]);
    assert.equal(again.exitCode, 1, String(again.stderr));
    assert.match(String(again.stderr), new RegExp(`agent "${agent.hostId}" not found: see \`kport agents ls\``));
  });

  test("an editor's kport rm agent/HOST does the same", async () => {
    const agent = await joinedAgent('gone-too');
    const res = await erin.kport(['rm', `agent/${agent.hostId}`]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal(String(res.stdout), `agent "${agent.hostId}" has been deleted.`);
    assert.equal((await refusedCall(agent.client)).code, 'agent_removed');
    assert.ok(!(await agentIds()).includes(agent.hostId));
  });

  test('agents rm on the server host is one agent.remove event naming the OS user, as through the server it names the person', async () => {
    const agent = await joinedAgent('gone-from-host');
    const res = await server.kport(['agents', 'rm', agent.hostId]);
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.equal((await refusedCall(agent.client)).code, 'agent_removed');
    const events = (await auditEvents(server)) as Array<{ spec: { type: string; host_id?: string; user?: string; remote_addr?: string; action?: string } }>;
    const removal = events.filter((e) => e.spec.type === 'agent.remove' && e.spec.host_id === agent.hostId);
    assert.equal(removal.length, 1);
    assert.deepEqual([removal[0]!.spec.user, removal[0]!.spec.remote_addr], [`${userInfo().username} (server host)`, 'local']);
    assert.ok(!events.some((e) => e.spec.type === 'user.call' && e.spec.action?.includes(agent.hostId)), 'its parts are not each an event of their own');
  });
});
