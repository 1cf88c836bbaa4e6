// The recording budget at a real server (attack issue #6), with real processes: a kube-apiserver and
// kwok pods, `kport server start` with a small auth_service.recording_budget, a Kubernetes agent, and
// alice and bob whose role requires session recording running `kubectl exec` through the server. One
// person filling their share leaves the others room; a full budget refuses the exec with what is
// used; files an operator deletes from the recordings directory free room without a restart; and
// `kport recordings ls` on the server's host lists who recorded what.
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { invitedPerson } from '../helpers/login.ts';
import { CLUSTER, PEERS, personKubectl, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { havePeer } from '../peers/process.ts';

const RECORDED = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'prod-recorded' },
  spec: { options: { require_session_recording: true }, allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } },
};

type Person = Awaited<ReturnType<typeof invitedPerson>>;

describe('the recording budget: a share per person, what is used in the refusal, removals noticed', { concurrency: false, timeout: 600_000 }, () => {
  let f: Fixture;
  let alice: Person;
  let bob: Person;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl and kwok', PEERS());
  const recordings = () => join(f.server.dir, 'data', 'server', 'recordings');
  /** `kubectl exec` printing `bytes` bytes, as `who`. */
  const exec = (who: Person, bytes: number) =>
    personKubectl(who.home).run(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', `head -c ${bytes} /dev/zero | tr "\\000" "x"`]);
  const filesOf = async (user: string) => {
    const res = await f.server.kport(['recordings', 'ls', '-o', 'json']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    return (JSON.parse(String(res.stdout)) as Array<{ session_id: string; user: string }>).filter((r) => r.user === user).map((r) => r.session_id);
  };

  before(async (t) => {
    if (!have(t as never)) return;
    f = await startFixture({ roles: [RECORDED], server: { auth: { recording_budget: { total: '40KiB', per_user: '24KiB' } } } });
    alice = await invitedPerson(f.server, 'alice', ['prod-recorded']);
    bob = await invitedPerson(f.server, 'bob', ['prod-recorded']);
    for (const p of [alice, bob]) assert.equal((await p.kport(['kube', 'config', CLUSTER])).exitCode, 0);
  });
  after(async () => f?.stop());

  test("alice fills her share and is refused with what she uses; bob is still recorded until the total is used; deleting alice's file makes room at once", async (t) => {
    if (!have(t)) return;
    // Three execs of 7,000 bytes each are recorded whole (about 7.4 KiB a recording, with its header):
    // 22 KiB of alice's 24 KiB share, which leaves less than a session needs.
    for (let i = 0; i < 3; i++) {
      const ran = await exec(alice, 7000);
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout, 'x'.repeat(7000));
    }
    assert.equal((await filesOf('alice')).length, 3);

    // Her share is used: her next exec is refused before it starts, saying how much is used.
    const refused = await exec(alice, 10);
    assert.notEqual(refused.code, 0);
    // kubectl prints it: the WebSocket refusal, then the same on its SPDY retry, as a Status it reads.
    assert.match(
      refused.stderr,
      /^Error from server \(Forbidden\): a role that lets you reach this cluster sets require_session_recording, and the server has no room to record this session \(alice's take 2\d\.\d KiB of their 24\.0 KiB share; all recordings take 2\d\.\d KiB of the server's 40\.0 KiB\): ask an operator to make room/,
    );
    assert.equal((await filesOf('alice')).length, 3);

    // bob has room of his own: recorded, until the 40 KiB total is used.
    for (let i = 0; i < 2; i++) assert.equal((await exec(bob, 7000)).code, 0);
    assert.equal((await filesOf('bob')).length, 2);
    const bobRefused = await exec(bob, 10);
    assert.notEqual(bobRefused.code, 0);
    assert.match(
      bobRefused.stderr,
      /^Error from server \(Forbidden\): .*no room to record this session \(all recordings take 3\d\.\d KiB of the server's 40\.0 KiB; bob's take 1\d\.\d KiB of their 24\.0 KiB share\)/,
    );

    // The operator's way of making room: deleting recordings. No restart.
    for (const id of await filesOf('alice')) rmSync(join(recordings(), `${id}.cast`));
    const bobAgain = await exec(bob, 100);
    assert.equal(bobAgain.code, 0, bobAgain.stderr);
    assert.equal(bobAgain.stdout, 'x'.repeat(100));
    const aliceAgain = await exec(alice, 100);
    assert.equal(aliceAgain.code, 0, aliceAgain.stderr);
    assert.equal((await filesOf('bob')).length, 3);
    assert.equal((await filesOf('alice')).length, 1);
    assert.equal(readdirSync(recordings()).length, 4);
  });

  test("recordings ls on the server's host: who, cluster, pod, start and duration of each recording, newest first", async (t) => {
    if (!have(t)) return;
    const res = await f.server.kport(['recordings', 'ls']);
    assert.equal(res.exitCode, 0, String(res.stderr));
    const [header, ...rows] = String(res.stdout)
      .trimEnd()
      .split('\n')
      .map((l) => l.split('\t'));
    assert.deepEqual(header, ['Session ID', 'User', 'Cluster', 'Pod', 'Started', 'Duration', 'Size']);
    // Newest first: alice's last exec, then bob's three.
    assert.deepEqual(
      rows.map((r) => [r[1], r[2], r[3]]),
      [['alice', CLUSTER, 'apps/web'], ...Array(3).fill(['bob', CLUSTER, 'apps/web'])],
    );
    for (const r of rows) {
      assert.ok(Date.now() - Date.parse(r[4]!) < 600_000, `started ${r[4]}`);
      assert.match(r[5]!, /^\d+s$/);
    }
  });
});
