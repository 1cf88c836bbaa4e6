// kport login's terminal prompts on their own: a stand-in for the TTY (raw mode recorded) so what
// is echoed can be read back. The built CLI's stdin handling is tested in test/e2e/login.test.ts.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { ReadStream } from 'node:tty';
import { ask } from '../../src/client/prompt.ts';

function terminal() {
  const input = new PassThrough() as PassThrough & { isRaw: boolean; setRawMode(on: boolean): void; modes: boolean[] };
  input.isRaw = false;
  input.modes = [];
  input.setRawMode = (on: boolean) => {
    input.isRaw = on;
    input.modes.push(on);
  };
  const output = new PassThrough();
  let shown = '';
  output.on('data', (c) => (shown += c));
  return { input, output, shown: () => shown };
}

test('a hidden prompt echoes nothing of the answer, takes backspace, ends at Enter, and leaves raw mode', async () => {
  const t = terminal();
  const answer = ask(t.input as unknown as ReadStream, t.output, 'Password: ', { hidden: true });
  t.input.write('hunter22');
  t.input.write('\u007f\u007f2\r');
  assert.equal(await answer, 'hunter2');
  assert.equal(t.shown(), 'Password: \n');
  assert.deepEqual(t.input.modes, [true, false]);
});

test('a visible prompt echoes what is typed; Ctrl-C ends the login with exit 130, Ctrl-D on nothing with exit 2', async () => {
  let t = terminal();
  const code = ask(t.input as unknown as ReadStream, t.output, 'TOTP code: ', { hidden: false });
  t.input.write('123456\n');
  assert.equal(await code, '123456');
  assert.equal(t.shown(), 'TOTP code: 123456\n');
  t = terminal();
  const interrupted = ask(t.input as unknown as ReadStream, t.output, 'Password: ', { hidden: true });
  t.input.write('abc\u0003');
  await assert.rejects(interrupted, (err: Error & { exitCode?: number }) => err.exitCode === 130 && /interrupted/.test(err.message));
  assert.equal(t.input.isRaw, false);
  t = terminal();
  const ended = ask(t.input as unknown as ReadStream, t.output, 'Password: ', { hidden: true });
  t.input.write('\u0004');
  await assert.rejects(ended, (err: Error & { exitCode?: number }) => err.exitCode === 2);
});
