// Recordings any server can play (issue 29), with real processes: moto's S3, one etcd, a
// kube-apiserver with kwok pods, `kport server start` with auth_service.audit_sessions_uri on
// moto's bucket, an agent, and people running `kubectl exec` through it. The session's cast is an
// object in the bucket; `kport play` and `kport recordings ls` through a second server on the same
// etcd (which recorded nothing) give it back. A URI that is not s3:// or names no bucket stops
// `kport server start` with one sentence; with the bucket's endpoint gone, a session that a role
// requires recorded is refused before it starts, and one that is not required runs unrecorded,
// its session.start saying why.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import * as OTPAuth from 'otpauth';
import { parseCast } from '../../src/recordings/asciicast.ts';
import { KPORT_BIN } from '../helpers/agent.ts';
import { CLUSTER, PEERS, personKubectl, ROLES, startFixture, type Fixture } from '../helpers/kube-server-fixture.ts';
import { invitedPerson } from '../helpers/login.ts';
import { auditEvents, startServer, type TestServer } from '../helpers/network.ts';
import { startEtcd, type EtcdCluster } from '../peers/etcd.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';

const RECORDED = {
  kind: 'role',
  version: 'v7',
  metadata: { name: 'prod-recorded' },
  spec: { options: { require_session_recording: true }, allow: { kubernetes_labels: { env: 'prod' }, kubernetes_groups: ['developers'] } },
};
const PREFIX = '/kport-recordings-s3';

type Person = Awaited<ReturnType<typeof invitedPerson>>;

describe('recordings in S3: recorded through one server, played through another', { concurrency: false, timeout: 600_000 }, () => {
  let moto: Moto;
  let etcd: EtcdCluster;
  let f: Fixture;
  let second: TestServer | undefined;
  let alice: Person;
  let bob: Person;
  let s3: S3Client;
  const have = (t: TestContext) => havePeer(t, 'kube-apiserver, kubectl, kwok, etcd and moto', [...PEERS(), BINARIES.motoServer()]);
  const storage = () => ({ type: 'etcd', peers: etcd.endpoints, prefix: PREFIX });
  const uri = () => `s3://recordings/team/prod?region=us-east-1&endpoint=${moto.endpoint}`;
  // The default chain, from the environment: credentials only (the endpoint is the URI's).
  const awsEnv = () => ({
    AWS_ACCESS_KEY_ID: moto.env.AWS_ACCESS_KEY_ID!,
    AWS_SECRET_ACCESS_KEY: moto.env.AWS_SECRET_ACCESS_KEY!,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const exec = (who: Person, text: string) => personKubectl(who.home).run(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', `echo ${text}`]);
  const sessionOf = async (type: string, user: string, ok: (e: Record<string, unknown>) => boolean = () => true) =>
    ((await auditEvents(f.server)).map((e) => e.spec) as Array<Record<string, unknown>>).filter((e) => e.type === type && e.user === user && ok(e));

  before(async (t) => {
    if (!have(t as never)) return;
    [moto, etcd] = await Promise.all([startMoto(), startEtcd({ members: 1 })]);
    s3 = new S3Client({
      endpoint: moto.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: awsEnv().AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv().AWS_SECRET_ACCESS_KEY },
    });
    await s3.send(new CreateBucketCommand({ Bucket: 'recordings' }));
    // A short drain: the SIGTERM test's session is cut after it, as what a grace leaves open is.
    f = await startFixture({
      roles: [RECORDED, ROLES[0]!],
      server: { storage: storage(), auth: { audit_sessions_uri: uri() }, env: awsEnv(), teleport: { shutdown_grace: '2s' } },
    });
    alice = await invitedPerson(f.server, 'alice', ['prod-recorded', 'auditor']);
    bob = await invitedPerson(f.server, 'bob', ['prod-dev']);
    for (const p of [alice, bob]) assert.equal((await p.kport(['kube', 'config', CLUSTER])).exitCode, 0);
  });
  after(async () => {
    await second?.stop();
    await f?.stop();
    s3?.destroy();
    await Promise.all([moto?.stop(), etcd?.stop()]);
  });

  test("an exec through the first server is an object in the bucket, under the URI's prefix, with the session's asciicast; kport play and recordings ls through a second server give it back", async (t) => {
    if (!have(t)) return;
    const ran = await exec(alice, 'hello-from-s3');
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, 'hello-from-s3\n');
    // session.end is written once the recording is stored, just after kubectl's exit.
    const end = await waitFor('the session.end of alice', async () => (await sessionOf('session.end', 'alice'))[0]);
    assert.equal(end?.recorded, true, JSON.stringify(end));
    const id = String(end!.session_id);

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'recordings' }));
    assert.deepEqual(
      (listed.Contents ?? []).map((o) => o.Key),
      [`team/prod/${id}.cast`],
    );
    const object = await s3.send(new GetObjectCommand({ Bucket: 'recordings', Key: `team/prod/${id}.cast` }));
    const cast = parseCast(await object.Body!.transformToString());
    assert.equal(cast.header.kport?.user, 'alice');
    assert.equal(cast.header.kport?.session_id, id);
    assert.ok(
      cast.events.some(([, code, data]) => code === 'o' && data.includes('hello-from-s3')),
      JSON.stringify(cast.events),
    );

    // A second server of the cluster: the same etcd, the same seal key, the same bucket; its own data dir, no recordings of its own.
    second = await startServer({ storage: storage(), auth: { audit_sessions_uri: uri() }, env: awsEnv(), sealKeyFrom: f.server });
    const code = (OTPAuth.URI.parse(alice.login.uri) as OTPAuth.TOTP).generate({ timestamp: Date.now() + 30_000 });
    const login = await execa(
      process.execPath,
      [KPORT_BIN, 'login', '--proxy', second.address, '--user', 'alice', '--password-stdin', '--ca-pin', second.pin],
      {
        cwd: alice.home,
        env: { HOME: alice.home, PATH: process.env.PATH ?? '' },
        extendEnv: false,
        reject: false,
        input: `${alice.password}\n${code}\n`,
      },
    );
    assert.equal(login.exitCode, 0, String(login.stderr));
    const played = await alice.kport(['play', id, '--speed', '50']);
    assert.equal(played.exitCode, 0, String(played.stderr));
    assert.match(String(played.stdout), /hello-from-s3/);
    const ls = await alice.kport(['recordings', 'ls', '-o', 'json']);
    assert.equal(ls.exitCode, 0, String(ls.stderr));
    const rows = JSON.parse(String(ls.stdout)) as Array<{ session_id: string; user: string; pod: string }>;
    assert.deepEqual(
      rows.map((r) => [r.session_id, r.user, r.pod]),
      [[id, 'alice', 'web']],
    );
    // On the second server's host, without a login: its config names the bucket, and that is where it reads.
    const onHost = await second.kport(['recordings', 'ls', '-o', 'json']);
    assert.equal(onHost.exitCode, 0, String(onHost.stderr));
    assert.deepEqual(
      (JSON.parse(String(onHost.stdout)) as Array<{ session_id: string }>).map((r) => r.session_id),
      [id],
    );
    const hostPlay = await second.kport(['play', id, '--speed', '50']);
    assert.equal(hostPlay.exitCode, 0, String(hostPlay.stderr));
    assert.match(String(hostPlay.stdout), /hello-from-s3/);
    // Who may play what is the roles' rule, as with a directory: bob's roles do not read sessions.
    const bobPlay = await bob.kport(['play', id]);
    assert.notEqual(bobPlay.exitCode, 0);
    assert.match(String(bobPlay.stderr), /user bob \(prod-dev\) may not read session resources/);
  });

  test('a URI that is not s3://, or names no bucket, stops kport server start with one sentence naming the fix', async (t) => {
    if (!have(t)) return;
    for (const [bad, why] of [
      ['/var/lib/kport/recordings', /is not a URI: write s3:\/\/BUCKET\/PREFIX/],
      ['file:///var/lib/kport/recordings', /not an s3:\/\/ URI: write s3:\/\/BUCKET\/PREFIX/],
      ['s3:///prefix?region=us-east-1', /names no bucket: write s3:\/\/BUCKET\/PREFIX/],
    ] as const) {
      await assert.rejects(startServer({ auth: { audit_sessions_uri: bad } }), (err: Error) => {
        assert.match(err.message, why);
        assert.match(err.message, /audit_sessions_uri/);
        return true;
      });
    }
  });

  test('SIGTERM while a session runs: the server ends it, completes its upload (what it printed is in the bucket) and session.end is written', async (t) => {
    if (!have(t)) return;
    const running = personKubectl(alice.home).spawn(['exec', '-n', 'apps', 'web', '--', 'sh', '-c', 'echo before-the-stop; sleep 60']);
    let out = '';
    running.stdout!.on('data', (c: Buffer) => (out += c));
    await waitFor('the session to print', async () => (out.includes('before-the-stop') ? true : undefined));
    // The running session: the one of alice's that has not ended.
    const ended = new Set((await sessionOf('session.end', 'alice')).map((e) => e.session_id));
    const start = (await sessionOf('session.start', 'alice')).find((e) => !ended.has(e.session_id));
    assert.ok(start, 'a session.start of the running session');
    const id = String(start!.session_id);
    // The server drains (2 s here), ends the session, stores its recording and its audit, and exits 0.
    f.server.proc!.kill('SIGTERM');
    const stopped = await f.server.proc!;
    assert.equal(stopped.exitCode, 0, f.server.log.slice(-3000));
    await running;
    const object = await s3.send(new GetObjectCommand({ Bucket: 'recordings', Key: `team/prod/${id}.cast` }));
    const cast = parseCast(await object.Body!.transformToString());
    assert.ok(
      cast.events.some(([, code, data]) => code === 'o' && data.includes('before-the-stop')),
      JSON.stringify(cast.events),
    );
    // The audit is in the shared store: the second server reads it.
    const ends = ((await auditEvents(second!)).map((e) => e.spec) as Array<Record<string, unknown>>).filter(
      (e) => e.type === 'session.end' && e.session_id === id,
    );
    assert.equal(ends.length, 1, JSON.stringify(ends));
    assert.equal(ends[0]!.recorded, true);
    // Back for what follows: the agent redials the restarted server.
    await f.server.start();
    await waitFor(
      'bob to reach the cluster again',
      async () => ((await personKubectl(bob.home).run(['get', 'pods', '-n', 'apps'])).code === 0 ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );
  });

  test("the bucket's endpoint gone: a session a role requires recorded is refused before it starts, saying why; one that is not required runs unrecorded and session.start says why", async (t) => {
    if (!have(t)) return;
    await moto.stop();
    const unrecorded = await exec(bob, 'not-recorded');
    assert.equal(unrecorded.code, 0, unrecorded.stderr);
    assert.equal(unrecorded.stdout, 'not-recorded\n');
    const start = await waitFor('the session.start of bob', async () => (await sessionOf('session.start', 'bob'))[0]);
    assert.equal(start?.recorded, false, JSON.stringify(start));
    assert.match(String(start?.reason), /^the recordings cannot be stored now \(s3:\/\/recordings\/team\/prod does not answer: /);

    const refused = await exec(alice, 'must-be-recorded');
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /^Error from server \(Forbidden\): a role that lets you reach this cluster sets require_session_recording, and the server cannot store recordings now \(s3:\/\/recordings\/team\/prod does not answer: .*\): try again later/,
    );
    assert.equal((await sessionOf('session.start', 'alice')).length, 2, 'no session of alice started while the bucket did not answer');
    // Listing and playing through the second server: the bucket's silence in one sentence, not an internal error.
    const ls = await alice.kport(['recordings', 'ls']);
    assert.notEqual(ls.exitCode, 0);
    assert.match(
      String(ls.stderr),
      /the recordings in s3:\/\/recordings\/team\/prod could not be listed: .*: try again later, or ask an operator to check auth_service\.audit_sessions_uri/,
    );
  });
});
