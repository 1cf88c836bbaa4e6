// What a first real user broke on the discovery side (issue 10): config mistakes that deleted the
// inventory, a tag regex that hung the leader, a restart that needed a new token, two agents on one
// data dir. Real `kport discover run` processes against moto.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { createClusters } from '../peers/aws.ts';
import { startMoto, type Moto } from '../peers/moto.ts';
import { havePeer, raceTimer, tempDir, waitFor } from '../peers/process.ts';
import { BINARIES } from '../peers/versions.ts';
import { KPORT_BIN, kubeClusters, setupAgent, type AgentSetup } from '../helpers/agent.ts';

const OWN = '123456789012';
const names = async (agent: AgentSetup) => (await kubeClusters(agent)).map((c) => c.metadata.name).sort();

describe('discovery safety against moto', { concurrency: false, timeout: 600_000 }, () => {
  let moto: Moto;
  before(async (t) => {
    if (!havePeer(t as never, 'moto', [BINARIES.motoServer()])) return;
    moto = await startMoto();
    await createClusters(moto, [
      { name: 'east-a', region: 'us-east-1', tags: { env: 'prod' } },
      { name: 'east-b', region: 'us-east-1', tags: { env: 'prod' } },
      { name: 'west-a', region: 'us-west-2', tags: { env: 'prod' } },
      // A tag that is a near-match for a nested-quantifier pattern: exponential for a backtracking engine.
      { name: 'evil', region: 'us-west-2', tags: { env: 'prod', team: `${'a'.repeat(200)}!` } },
    ]);
  });
  after(() => moto?.stop());

  const matchers = [{ types: ['eks'], regions: ['us-east-1', 'us-west-2'], tags: { env: 'prod' } }];
  const all = ['east-a-eks-us-east-1', 'east-b-eks-us-east-1', 'evil-eks-us-west-2', 'west-a-eks-us-west-2'].map((n) => `${n}-${OWN}`);

  test('config mistakes after a good poll exit 2 with key path and line, and delete nothing', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('safety'), { group: 'g', matchers });
    const first = await agent.kport(['discover', 'run', '--once']);
    assert.equal(first.exitCode, 0, String(first.stderr));
    assert.deepEqual(await names(agent), all);
    assert.match(
      String(first.stderr),
      new RegExp(`poll done: 4 clusters, 4 created \\(${all.join(', ')}\\), 0 updated, 0 deleted, 0 failed`),
      'the poll line names what it created',
    );
    const good = parse(readFileSync(agent.config, 'utf8'));
    const mistakes: Array<[string, unknown, RegExp]> = [
      ['no matcher', [], /discovery_service\.aws \(line \d+\): discovery service requires at least one aws matcher/],
      ['no type', [{ types: [], regions: ['us-east-1'] }], /aws\[0\]\.types \(line \d+\): discovery service requires at least one type/],
      ['unsupported type', [{ types: ['ec2'], regions: ['us-east-1'] }], /aws\[0\]\.types\[0\] \(line \d+\): discovery service type does not support "ec2"/],
      ['misspelt type', [{ types: ['eksx'], regions: ['us-east-1'] }], /does not support "eksx".*did you mean "eks"/],
      ['wrongly cased type', [{ types: ['EKS'], regions: ['us-east-1'] }], /does not support "EKS"/],
      ['unknown region', [{ types: ['eks'], regions: ['us-east-7'] }], /aws\[0\]\.regions\[0\] \(line \d+\): unknown AWS region "us-east-7"/],
      ['empty region', [{ types: ['eks'], regions: [''] }], /regions\[0\] \(line \d+\): a region cannot be empty/],
      ['"*" with others', [{ types: ['eks'], regions: ['*', 'us-east-1'] }], /when using "\*" as region, no other regions can be specified/],
      ['a regex RE2 refuses', [{ types: ['eks'], regions: ['us-east-1'], tags: { env: '^(?=prod).*$' } }], /aws\[0\]\.tags \(line \d+\): env: .*RE2/],
    ];
    const mistaken = join(agent.dir, 'mistaken.yaml');
    for (const [what, aws, message] of mistakes) {
      writeFileSync(mistaken, stringify({ ...good, discovery_service: { ...good.discovery_service, aws } }));
      const run = await agent.kport(['discover', 'run', '--once', '-c', mistaken]);
      assert.equal(run.exitCode, 2, `${what}: ${run.stderr}`);
      assert.match(String(run.stderr), message, what);
      assert.deepEqual(await names(agent), all, `${what}: nothing deleted`);
    }

    // A matcher that reached AWS not once deletes nothing either (here: the endpoint is gone).
    writeFileSync(agent.config, stringify(good));
    const unreachable = await agent.kport(['discover', 'run', '--once'], { env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' } });
    assert.equal(unreachable.exitCode, 1, String(unreachable.stderr));
    assert.match(String(unreachable.stdout), /0 deleted/);
    assert.deepEqual(await names(agent), all, 'an unreachable AWS deletes nothing');

    // Narrowing the config on purpose is different: a full, successful poll of what is still
    // asked for removes the clusters of the region no matcher covers any more.
    writeFileSync(agent.config, stringify({ ...good, discovery_service: { ...good.discovery_service, aws: [{ ...matchers[0], regions: ['us-east-1'] }] } }));
    const narrowed = await agent.kport(['discover', 'run', '--once']);
    assert.equal(narrowed.exitCode, 0, String(narrowed.stderr));
    assert.deepEqual(
      await names(agent),
      all.filter((n) => n.includes('us-east-1')),
    );
  });

  test('a nested-quantifier tag pattern against a long near-match finishes at once, and SIGTERM stops the agent', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const evil = [{ types: ['eks'], regions: ['us-west-2'], tags: { env: 'prod', team: ['^(a+)+$', '^(a|aa)*$', '*a*a*a*a*a*a*a*a*a*a*a*a*b'] } }];
    const agent = await setupAgent(moto, tempDir('regex'), { group: 'r', matchers: evil });
    const started = Date.now();
    const once = await agent.kport(['discover', 'run', '--once']);
    assert.equal(once.exitCode, 0, String(once.stderr));
    assert.match(String(once.stdout), /Discovered 0 EKS clusters/);
    // JSON event lines are {time, level, message} with the snake_case event beside, as the README promises.
    const json = await agent.kport(['discover', 'run', '--once', '--format', 'json']);
    const lines = String(json.stderr)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    for (const l of lines) assert.deepEqual(Object.keys(l).slice(0, 3), ['time', 'level', 'message'], JSON.stringify(l));
    const done = lines.find((l) => l.event?.type === 'poll-done').event;
    // The summary on stdout is pretty-printed and sorted, as every command's JSON is.
    assert.match(String(json.stdout), /^\{\n {2}"created": 0,\n {2}"deleted": 0,\n {2}"failures": \[\],/);
    assert.ok(done.stats.duration_ms >= 0 && done.stats.aws_calls > 0, JSON.stringify(done));
    assert.ok(!JSON.stringify(done).includes('durationMs'));
    t.diagnostic(`poll with the evil patterns: ${Date.now() - started} ms`);

    const proc = execa(process.execPath, [KPORT_BIN, 'discover', 'run'], { cwd: agent.dir, env: agent.env, extendEnv: false, reject: false });
    let log = '';
    proc.stderr!.on('data', (c: Buffer) => (log += c));
    await waitFor('a poll to finish', async () => /poll done/.test(log), { timeoutMs: 30_000 });
    proc.kill('SIGTERM');
    const stopped = await Promise.race([proc, raceTimer(15_000)]);
    assert.ok(stopped, 'SIGTERM stops the agent');
    assert.equal(stopped.exitCode, 0, log);
  });

  test('a restart needs no token: the identity is kept (0600) and the token is used once', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('identity'), { group: 'i', matchers });
    // A token that expires in 2 s: joined with it, then restarted after it is gone.
    const short = JSON.parse(String((await agent.kport(['tokens', 'add', '--type=discovery', '--ttl=2s', '--format=json'])).stdout));
    writeFileSync(join(agent.dir, 'token'), short.token, { mode: 0o600 });
    const joined = await agent.kport(['discover', 'run', '--once']);
    assert.equal(joined.exitCode, 0, String(joined.stderr));
    const identityDir = join(agent.dir, 'data', 'identity');
    assert.equal(statSync(identityDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(identityDir, 'identity.json')).mode & 0o777, 0o600);
    const identity = JSON.parse(readFileSync(join(identityDir, 'identity.json'), 'utf8'));
    assert.deepEqual(identity.roles, ['discovery']);

    // Restarted only once the token is gone (it lists until its 2 s are up).
    await waitFor(
      'the token to expire',
      async () => {
        const tokens = JSON.parse(String((await agent.kport(['tokens', 'ls', '--format=json'])).stdout));
        return !tokens.some((tok: { name: string }) => tok.name === short.name) || undefined;
      },
      { timeoutMs: 10_000 },
    );
    writeFileSync(join(agent.dir, 'token'), '');
    const restarted = await agent.kport(['discover', 'run', '--once']);
    assert.equal(restarted.exitCode, 0, String(restarted.stderr));
    const status = JSON.parse(String((await agent.kport(['get', `discovery_service/${identity.host_id}`, '--format=json'])).stdout));
    assert.equal(status[0]?.spec.host_id ?? status.spec?.host_id, identity.host_id, 'the same host after the restart');

    // The store keeps a hash of the credential, never the credential.
    for (const f of readdirSync(join(agent.dir, 'data')).filter((f) => f.startsWith('kport.db'))) {
      assert.ok(!readFileSync(join(agent.dir, 'data', f)).includes(identity.credential.secret), `${f} holds no agent credential`);
    }
    const agents = JSON.parse(String((await agent.kport(['get', 'agent', '--format=json'])).stdout));
    assert.deepEqual(
      agents.map((a: { spec: { host_id: string; roles: string[] } }) => [a.spec.host_id, a.spec.roles]),
      [[identity.host_id, ['discovery']]],
    );
    assert.ok(!JSON.stringify(agents).includes('credential_hash'), 'get agent shows no credential hash');

    // An empty token file is named as such when a join is needed.
    assert.equal((await agent.kport(['rm', `agent/${identity.host_id}`])).exitCode, 0);
    const removed = await agent.kport(['discover', 'run', '--once']);
    assert.equal(removed.exitCode, 4);
    assert.match(String(removed.stderr), /identity \(host [0-9a-f-]+, in .*identity\) is not known to the store.*join again with a new token/);
  });

  test('an empty token file says so', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('empty-token'), { group: 'e', matchers });
    writeFileSync(join(agent.dir, 'token'), '\n');
    const run = await agent.kport(['discover', 'run', '--once']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /The token file .*token is empty: write a token into it/);
  });

  test('a second agent on the same data dir is refused; a SIGKILLed agent restarts and takes its own lease back at once', async (t) => {
    if (!havePeer(t, 'moto', [BINARIES.motoServer()])) return;
    const agent = await setupAgent(moto, tempDir('shared'), { group: 's', matchers, leaseTtl: '20s', pollInterval: '1h' });
    const start = () => {
      const proc = execa(process.execPath, [KPORT_BIN, 'discover', 'run'], { cwd: agent.dir, env: agent.env, extendEnv: false, reject: false });
      const out = { proc, log: '' };
      proc.stderr!.on('data', (c: Buffer) => (out.log += c));
      return out;
    };
    const first = start();
    await waitFor('the first agent to lead', async () => /leading discovery group s/.test(first.log), { timeoutMs: 30_000 });
    const second = await agent.kport(['discover', 'run']);
    assert.equal(second.exitCode, 1);
    assert.match(
      String(second.stderr),
      new RegExp(`Another kport agent \\(pid ${first.proc.pid} on .*\\) is running on the data dir .*: give each agent its own teleport.data_dir`),
    );
    const services = JSON.parse(String((await agent.kport(['get', 'discovery_service', '--format=json'])).stdout));
    assert.equal(services.length, 1);

    // Killed without a chance to release its lease (20 s): the restart is the same host, and
    // recognises the claim as its own instead of waiting the lease out.
    first.proc.kill('SIGKILL');
    await first.proc;
    const killedAt = Date.now();
    const again = start();
    try {
      await waitFor('the restarted agent to lead', async () => /leading discovery group s/.test(again.log), { timeoutMs: 30_000 });
      const took = Date.now() - killedAt;
      t.diagnostic(`restart to leadership: ${took} ms with a 20 s lease`);
      assert.ok(took < 15_000, `led again after ${took} ms, not after the 20 s lease`);
    } finally {
      again.proc.kill('SIGTERM');
      await again.proc;
    }
    assert.equal(JSON.parse(String((await agent.kport(['get', 'discovery_service', '--format=json'])).stdout)).length, 1);
  });
});
