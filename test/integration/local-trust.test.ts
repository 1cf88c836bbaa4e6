// What kport trusts on a machine shared with other Unix users (an outside tester's findings): a data
// dir, seal key, store, agent key, profile or KPORT_HOME that another user made is refused, naming
// the path and its owner, as ssh refuses such keys; so is one others can write; and a KPORT_HOME
// kport cannot read is an error, never "no profile" (which ran `users add` on a local store).
// The parts that need a file of another user skip, with the reason, when this run cannot make one
// (neither root nor passwordless sudo); the mode checks run everywhere.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/cli.ts';
import { invitedPerson, type Person } from '../helpers/login.ts';
import { startServer, type TestServer } from '../helpers/network.ts';
import { otherUser, type OtherUser } from '../helpers/other-user.ts';
import { tempDir, waitFor } from '../peers/process.ts';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The other user, or the test skipped with the reason this run has none. */
async function needOther(t: TestContext): Promise<OtherUser | undefined> {
  const other = await otherUser();
  if (typeof other === 'string') {
    t.skip(other);
    return undefined;
  }
  return other;
}

/** How a process that should refuse at once ended: its exit, or `served` when it went on (then killed). */
async function outcome(proc: ResultPromise, serving: () => boolean, what: string): Promise<{ served: boolean; exitCode?: number; stderr: string }> {
  let exited = false;
  void proc.finally(() => (exited = true)).catch(() => undefined);
  await waitFor(`${what} to refuse or to serve`, async () => exited || serving(), { timeoutMs: 30_000 });
  const served = serving();
  if (!exited) proc.kill('SIGKILL');
  const res = await proc;
  return { served, exitCode: res.exitCode, stderr: String(res.stderr) };
}

/** The refusal of a process that must not go on. */
function refusal(run: { served: boolean; exitCode?: number; stderr: string }, what: string): { exitCode?: number; stderr: string } {
  assert.equal(run.served, false, `${what} went on instead of refusing: ${run.stderr}`);
  return run;
}

describe("local trust: the server's data dir, seal key and store; an agent's identity", { timeout: 240_000 }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => server?.stop());

  const data = () => join(server.dir, 'data');
  const serverStart = async () => {
    let out = '';
    const proc = server.kport(['server', 'start']);
    proc.stdout!.on('data', (c: Buffer) => (out += c));
    return refusal(await outcome(proc, () => /CA pin:/.test(out), 'kport server start'), 'kport server start');
  };

  test('server start refuses a data dir, server dir or store that others can write, naming it and the chmod (runs everywhere)', async () => {
    await server.stop();
    try {
      for (const [path, mode, fix] of [
        [data(), 0o770, 700],
        [join(data(), 'server'), 0o777, 700],
        [join(data(), 'kport.db'), 0o660, 600],
      ] as const) {
        chmodSync(path, mode);
        try {
          const run = await serverStart();
          assert.equal(run.exitCode, 1, run.stderr);
          assert.match(
            run.stderr,
            new RegExp(`${escapeRegExp(path)} is writable by other users, who could .*: run chmod ${fix} ${escapeRegExp(path)}, then run the command again\\.`),
          );
        } finally {
          chmodSync(path, fix === 700 ? 0o700 : 0o600);
        }
      }
    } finally {
      await server.start();
    }
  });

  test('server start refuses a data dir, seal key or store another local user made (0600/0700, theirs), naming the path and the owner', async (t) => {
    const other = await needOther(t);
    if (!other) return;
    await server.stop();
    try {
      for (const path of [data(), join(data(), 'server'), join(data(), 'server', 'seal.key'), join(data(), 'kport.db')]) {
        const undo = await other.plant(path);
        try {
          const run = await serverStart();
          assert.equal(run.exitCode, 1, `${path}: ${run.stderr}`);
          assert.match(
            run.stderr,
            new RegExp(
              `${escapeRegExp(path)} belongs to uid ${other.uid}\\b.*, not to you \\(uid \\d+.*\\)( or root)?: another local user may have put it there, so kport will not use it`,
            ),
          );
        } finally {
          await undo();
        }
      }
    } finally {
      // The agents below join this server, whatever happened here.
      await server.start();
    }
  });

  /** A discovery agent of this server, in its own dir, with AWS pointed at a closed port (it joins before it polls). */
  const agentDir = async () => {
    const dir = tempDir('trust-agent');
    writeFileSync(join(dir, 'token'), await server.token('discovery'), { mode: 0o600 });
    writeFileSync(
      join(dir, 'kport.yaml'),
      stringify({
        version: 'v3',
        teleport: {
          data_dir: join(dir, 'data'),
          proxy_server: server.address,
          ca_pin: server.pin,
          join_params: { token_name: join(dir, 'token'), method: 'token' },
        },
        discovery_service: { enabled: 'yes', discovery_group: 'trust', aws: [{ types: ['eks'], regions: ['us-east-1'], tags: { '*': '*' } }] },
      }),
    );
    const env = {
      HOME: dir,
      PATH: process.env.PATH ?? '',
      KPORT_CONFIG: join(dir, 'kport.yaml'),
      AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
      AWS_REGION: 'us-east-1',
    };
    const identity = join(dir, 'data', 'identity');
    /** `discover run` until it refuses, or until it has an identity (joined or resumed) and polls. */
    const run = async () => {
      let log = '';
      const proc = execa(process.execPath, [KPORT_BIN, 'discover', 'run'], { cwd: dir, env, extendEnv: false, reject: false });
      proc.stderr!.on('data', (c: Buffer) => (log += c));
      return outcome(proc, () => existsSync(join(identity, 'identity.json')) && /poll|region|leading|standby/i.test(log), 'kport discover run');
    };
    return { dir, identity, key: join(identity, 'key.pem'), run };
  };

  test('an agent refuses a key.pem another local user planted in its identity directory before it joined, naming it and the owner', async (t) => {
    const other = await needOther(t);
    if (!other) return;
    const agent = await agentDir();
    mkdirSync(agent.identity, { recursive: true, mode: 0o700 });
    writeFileSync(agent.key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await other.plant(agent.key);
    const run = refusal(await agent.run(), 'the agent');
    assert.notEqual(run.exitCode, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`The agent's key ${escapeRegExp(agent.key)} belongs to uid ${other.uid}\\b`));
    assert.equal(existsSync(join(agent.identity, 'identity.json')), false, 'it did not join with that key');
  });

  test('a joined agent refuses its key.pem when others can read it, and its identity directory when others can write it (runs everywhere)', async () => {
    const agent = await agentDir();
    const first = await agent.run();
    assert.equal(first.served, true, `the first run joins and polls: ${first.stderr}`);
    chmodSync(agent.key, 0o644);
    let run = refusal(await agent.run(), 'the agent');
    assert.notEqual(run.exitCode, 0, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(
        `${escapeRegExp(agent.key)} can be read by other users \\(mode 0644\\), so kport will not use it: run chmod 600 ${escapeRegExp(agent.key)} \\(and if anyone may have read it, remove ${escapeRegExp(agent.identity)} and join again with a new token\\)\\.`,
      ),
    );
    chmodSync(agent.key, 0o600);
    chmodSync(agent.identity, 0o777);
    run = refusal(await agent.run(), 'the agent');
    assert.notEqual(run.exitCode, 0, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(
        `${escapeRegExp(agent.identity)} is writable by other users, who could replace this agent's key or certificate in it: run chmod 700 ${escapeRegExp(agent.identity)}`,
      ),
    );
    chmodSync(agent.identity, 0o700);
    assert.equal((await agent.run()).served, true, 'fixed, it resumes');
  });
});

describe("local trust: a person's KPORT_HOME and profile", { timeout: 180_000 }, () => {
  let server: TestServer;
  let alice: Person;
  before(async () => {
    server = await startServer();
    alice = await invitedPerson(server, 'alice', ['access']);
  });
  after(async () => server?.stop());

  test('a KPORT_HOME, profile or profile file another local user made is refused (exit 4), naming the path and the owner', async (t) => {
    const other = await needOther(t);
    if (!other) return;
    const home = join(alice.home, '.kport');
    const dir = join(home, 'profiles', server.address.replace(':', '_'));
    assert.equal((await alice.kport(['kube', 'ls'])).exitCode, 0, 'the profile works');
    for (const path of [
      home,
      join(home, 'profiles'),
      join(home, 'current-profile'),
      dir,
      join(dir, 'profile.json'),
      join(dir, 'ca.pem'),
      join(dir, 'cert.pem'),
      join(dir, 'key.pem'),
    ]) {
      const undo = await other.plant(path);
      try {
        const res = await alice.kport(['kube', 'ls']);
        assert.equal(res.exitCode, 4, `${path}: ${String(res.stderr)}`);
        assert.match(
          String(res.stderr),
          new RegExp(`${escapeRegExp(path)} belongs to uid ${other.uid}\\b.*: another local user may have put it there, so kport will not use it`),
        );
      } finally {
        await undo();
      }
    }
    assert.equal((await alice.kport(['kube', 'ls'])).exitCode, 0, 'given back, the profile works');
  });

  test('a KPORT_HOME kport cannot read is an error naming it (exit 4), not "no profile": users add does not land in a local store', async (t) => {
    const home = join(alice.home, '.kport');
    const scratch = tempDir('unreadable-home');
    chmodSync(scratch, 0o777);
    const env = { HOME: alice.home, KPORT_HOME: home, XDG_DATA_HOME: scratch, PATH: process.env.PATH ?? '' };
    let argv = [process.execPath, KPORT_BIN, 'users', 'add', 'bob', '--roles', 'editor'];
    if (process.geteuid?.() === 0) {
      // Root reads any directory: the unreadable home is seen by another user.
      const other = await needOther(t);
      if (!other) return;
      const probe = other.as([process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(KPORT_BIN)})`], env);
      if ((await execa(probe[0]!, probe.slice(1), { reject: false, cwd: scratch })).exitCode !== 0)
        return void t.skip('the other user cannot read this checkout of kport');
      argv = other.as(argv, env);
    }
    chmodSync(home, 0o000);
    try {
      const res = await execa(argv[0]!, argv.slice(1), { cwd: scratch, env, extendEnv: false, reject: false, stdin: 'ignore' });
      assert.equal(res.exitCode, 4, String(res.stderr));
      assert.match(String(res.stderr), new RegExp(`Cannot read your kport home ${escapeRegExp(home)} \\(permission denied\\)`));
      assert.doesNotMatch(String(res.stdout), /User bob added/);
      assert.equal(existsSync(join(scratch, 'kport', 'kport.db')), false, 'no local store was made');
    } finally {
      chmodSync(home, 0o700);
    }
  });
});
