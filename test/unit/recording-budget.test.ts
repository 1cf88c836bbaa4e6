// The recording budget (attack issue #6), with a small one injected: each person's share of it, the
// sentence that says what is used, removals by an operator (files deleted) noticed without a
// restart, a restart that counts by the owner each file's header names; and its config keys.
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ws from 'ws';
import { loadConfig } from '../../src/config/load.ts';
import { budgetLimits, DEFAULT_BUDGET } from '../../src/server/events/recording/budget.ts';
import { SessionRecorder } from '../../src/server/events/recording/recorder.ts';
import { tempDir } from '../peers/process.ts';
import { tempHome } from '../helpers/run.ts';

const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, opts: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean }): Buffer[] } };
const frame = (channel: number, data: string, mask = false) =>
  Buffer.concat(Sender.frame(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), { fin: true, opcode: 2, mask, readOnly: false }));
const RESPONSE_101 = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n';
const KiB = 1024;

function setup(budget = { total: 10 * KiB, perUser: 6 * KiB }) {
  const dir = join(tempDir('budget'), 'recordings');
  const events: Array<Record<string, unknown>> = [];
  const make = () => new SessionRecorder({ dir, audit: { record: async (e) => void events.push(e as Record<string, unknown>) }, log: () => {}, budget });
  let recorder = make();
  /** One exec of `person` that prints `bytes` of output; whether it was recorded, and its session.start/end. */
  const exec = async (id: string, person: string, bytes: number) => {
    const session = recorder.start({
      sessionId: id,
      person,
      cluster: 'prod',
      kubeUser: person,
      kubeGroups: [],
      namespace: 'apps',
      pod: 'web',
      protocol: 'v5.channel.k8s.io',
    });
    session.fromUpstream(Buffer.from(RESPONSE_101));
    session.fromClient(frame(4, '{"Width":80,"Height":24}', true));
    for (let sent = 0; sent < bytes; sent += 500) session.fromUpstream(frame(1, 'z'.repeat(Math.min(500, bytes - sent))));
    await session.end();
    const mine = events.filter((e) => e.session_id === id);
    return { recorded: session.recorded, start: mine.find((e) => e.type === 'session.start')!, end: mine.find((e) => e.type === 'session.end')! };
  };
  return { dir, recorder: () => recorder, restart: () => (recorder = make()), exec };
}

test('a person past their share is not recorded, with what is used in the reason; others still are, until the total is used', async () => {
  const { recorder, exec } = setup();
  const first = await exec('a-1', 'alice', 8 * KiB);
  assert.equal(first.recorded, true);
  assert.match(
    String(first.end.reason),
    /recording stopped early: no room left in the recording budget \(alice's take 5\.\d KiB of their 6\.0 KiB share; all recordings take 5\.\d KiB of the server's 10\.0 KiB\)/,
  );
  assert.match(recorder().noRoom('alice') ?? '', /^alice's take \d\.\d KiB of their 6\.0 KiB share; all recordings take/);

  const second = await exec('a-2', 'alice', 100);
  assert.equal(second.recorded, false);
  assert.match(
    String(second.start.reason),
    /^no room in the recording budget \(alice's take \d\.\d KiB of their 6\.0 KiB share; .*\): an operator makes room by moving old recordings out of .*recordings$/,
  );

  // alice's share full leaves bob's room: his session is recorded until the total is used.
  const bob = await exec('b-1', 'bob', 6 * KiB);
  assert.equal(bob.recorded, true);
  assert.match(String(bob.end.reason), /no room left in the recording budget \(all recordings take \d+\.\d KiB of the server's 10\.0 KiB; bob's take/);
  const carol = await exec('c-1', 'carol', 100);
  assert.equal(carol.recorded, false);
  assert.match(
    String(carol.start.reason),
    /no room in the recording budget \(all recordings take (9|10)\.\d KiB of the server's 10\.0 KiB; carol's take 0 B of their 6\.0 KiB share\)/,
  );
});

test('recordings an operator deletes from the directory are noticed by the next session that would not fit, without a restart; a restart counts each file for the person its header names', async () => {
  const { dir, recorder, restart, exec } = setup();
  assert.equal((await exec('a-1', 'alice', 8 * KiB)).recorded, true);
  assert.equal((await exec('a-2', 'alice', 100)).recorded, false);
  rmSync(join(dir, 'a-1.cast'));
  const again = await exec('a-3', 'alice', 100);
  assert.equal(again.recorded, true, String(again.start.reason));
  assert.ok(recorder().budget.usage('alice').user < KiB, JSON.stringify(recorder().budget.usage('alice')));

  assert.equal((await exec('b-1', 'bob', 5 * KiB)).recorded, true);
  // A file kport did not write counts against the total, for nobody's share.
  writeFileSync(join(dir, 'foreign.cast'), 'x'.repeat(4 * KiB));
  restart();
  const bob = recorder().budget.usage('bob');
  const alice = recorder().budget.usage('alice');
  assert.ok(bob.user > 5 * KiB, JSON.stringify(bob));
  assert.ok(alice.user > 100 && alice.user < KiB, `alice's file is counted as hers after the restart: ${JSON.stringify(alice)}`);
  assert.ok(bob.total >= bob.user + alice.user + 4 * KiB, JSON.stringify(bob));
  assert.equal((await exec('c-1', 'carol', 100)).recorded, false, 'the foreign file leaves no room in the total');
  assert.deepEqual(readdirSync(dir).sort(), ['a-3.cast', 'b-1.cast', 'foreign.cast']);
});

test('auth_service.recording_budget: sizes with units, a total alone gives each person a quarter, a share above the total and sizes below the floor are refused', async () => {
  const load = async (budget: string) => {
    const dir = tempHome();
    const path = join(dir, 'kport.yaml');
    writeFileSync(path, `auth_service:\n  enabled: yes\n  recording_budget: ${budget}\n`);
    return loadConfig({ file: path, cwd: dir, env: { HOME: dir } });
  };
  assert.deepEqual(budgetLimits((await load('{ total: 64KiB, per_user: 20KiB }')).auth_service?.recording_budget), { total: 64 * KiB, perUser: 20 * KiB });
  assert.deepEqual(budgetLimits((await load('{ total: 2GB }')).auth_service?.recording_budget), { total: 2e9, perUser: 5e8 });
  assert.deepEqual(budgetLimits((await load('{ per_user: 1MiB }')).auth_service?.recording_budget), { total: DEFAULT_BUDGET.total, perUser: 1024 * KiB });
  assert.deepEqual(budgetLimits(undefined), { total: 4 * 1024 ** 3, perUser: 1024 ** 3 });
  await assert.rejects(load('{ total: 64KiB, per_user: 1MiB }'), /recording_budget\.per_user.*per_user is more than total/s);
  await assert.rejects(load('{ total: 1KiB }'), /1KiB is below the minimum of 16KiB/);
  await assert.rejects(load('{ total: lots }'), /invalid size "lots"/);
});
