// The output module (issues 18.5, 19.7, 19.12, 19.13): escaping, YAML a 1.1 reader reads back, labels, discover run's lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import { parse } from 'yaml';
import { createContext } from '../../src/core/context.ts';
import { formatLabels, printable, printableMessage, renderTable, serialize } from '../../src/core/output.ts';
import { reduceDashboard, initialDashboard } from '../../src/ui/discovery-dashboard.ts';
import { describe as describeEvent, discoveryReporter } from '../../src/ui/discovery-report.ts';

/** Every character that acts on a terminal or reorders text, in one string. */
const HOSTILE = 'a\u001b]0;pwned\u0007b\u001b[2J\u009b31m\u007f\r\n\tc\u202eevil\u2066\u2069\u200e\u200f\u061c\u202a\u2028d';
/** Raw, less the newlines and tabs a table or a document lays itself out with. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('printable shows every control and bidi character as a visible escape', () => {
  const shown = printable(HOSTILE);
  assert.doesNotMatch(shown, RAW);
  assert.doesNotMatch(shown, /[\n\t]/);
  assert.equal(printable('\u001b]0;t\u0007'), '\\x1b]0;t\\x07');
  assert.equal(printable('x\u202ey\u009b\u007f'), 'x\\u202ey\\x9b\\x7f');
  assert.equal(printable('tab\tnl\ncr\r'), 'tab\\tnl\\ncr\\r');
  assert.equal(printable('prod-eks-us-east-1 (é, 東京)'), 'prod-eks-us-east-1 (é, 東京)');
  // A message keeps its own line breaks and nothing else.
  assert.equal(printableMessage('one\n  two \u001b[2J'), 'one\n  two \\x1b[2J');
});

test('tables escape every cell, piped and on a terminal, so a cell cannot add a column or a line', () => {
  for (const tty of [false, true]) {
    const out = renderTable(['Host', 'State'], [[HOSTILE, 'leader']], { tty });
    assert.doesNotMatch(out, RAW, `tty=${tty}`);
    assert.equal(out.trimEnd().split('\n').length, tty ? 3 : 2);
  }
  assert.equal(
    renderTable(['A', 'B'], [['x\ty', 'z']], { tty: false })
      .split('\n')[1]!
      .split('\t').length,
    2,
  );
});

test('json output escapes what JSON.stringify leaves raw (DEL, C1, bidi) and reads back the same', () => {
  const value = { hostname: HOSTILE, errors: [{ error: 'e\u202e' }] };
  const text = serialize(value, 'json');
  assert.doesNotMatch(text, RAW);
  assert.deepEqual(JSON.parse(text), value);
});

/** Format characters (general category Cf) and Hangul fillers: a terminal shows none of them, so a name or message can hide text or look like another. */
const INVISIBLE = 'ad\u200bmin\u00ad\u200c\u200d\u2060\ufeff\u180e\u3164\u115f\u1160\uffa0\u{e0001}x';
const RAW_INVISIBLE = /[\p{Cf}\u3164\u115f\u1160\uffa0]/u;

test('invisible characters (every Unicode format character, Hangul fillers) are escaped in text, messages, JSON and YAML, and read back the same', () => {
  assert.equal(printable('a\u200bb\u00adc\u3164d\ufeffe'), 'a\\u200bb\\xadc\\u3164d\\ufeffe');
  assert.equal(printableMessage('one\n\u200btwo'), 'one\n\\u200btwo');
  assert.doesNotMatch(printable(INVISIBLE), RAW_INVISIBLE);
  assert.doesNotMatch(renderTable(['User'], [[INVISIBLE]], { tty: true }), RAW_INVISIBLE);
  const json = serialize({ message: INVISIBLE }, 'json');
  assert.match(json, /ad\\u200bmin\\u00ad/);
  assert.doesNotMatch(json, RAW_INVISIBLE);
  assert.equal(JSON.parse(json).message, INVISIBLE);
  const yaml = serialize({ message: INVISIBLE }, 'yaml');
  assert.doesNotMatch(yaml, RAW_INVISIBLE);
  assert.equal(parse(yaml, { version: '1.1' }).message, INVISIBLE);
});

// What YAML 1.1 readers (PyYAML, Ruby, Go yaml.v2) change if it is left plain; the e2e test reads it with PyYAML itself.
const AMBIGUOUS = [
  'no',
  'No',
  'NO',
  'yes',
  'on',
  'off',
  'Off',
  'y',
  'n',
  'Y',
  'N',
  'true',
  'False',
  '~',
  'null',
  'Null',
  '',
  '2024-01-01',
  '2001-12-14t21:59:43.10-05:00',
  '0755',
  '0o17',
  '0x1F',
  '0b101',
  '1_000',
  '1:20',
  '190:20:30.15',
  '1e3',
  '-.5',
  '.inf',
  '.NaN',
  '+12',
  '<<',
  '=',
  '12',
  '1.0',
];

test('yaml output reads back unchanged under YAML 1.1 and 1.2: ambiguous strings are quoted, keys too', () => {
  const labels = Object.fromEntries(AMBIGUOUS.filter(Boolean).map((s, i) => [s, AMBIGUOUS[(i + 1) % AMBIGUOUS.length]!]));
  const value = { labels, list: AMBIGUOUS, Version: '2012-10-17', plain: 'team-a', flag: true, count: 3 };
  const text = serialize(value, 'yaml');
  assert.deepEqual(parse(text, { version: '1.1' }), value);
  assert.deepEqual(parse(text, { version: '1.2' }), value);
  assert.match(text, /^Version: "2012-10-17"$/m);
  assert.match(text, /^ {2}"no": /m);
  // What needs no quotes gets none: people read this.
  assert.match(text, /^plain: team-a$/m);
  assert.match(text, /^flag: true$/m);
});

test('yaml output escapes control and bidi characters, and reads back the same', () => {
  const value = { hostname: HOSTILE, 'k\u202e': 'v' };
  const text = serialize(value, 'yaml');
  assert.doesNotMatch(text.replace(/\n/g, ''), RAW);
  assert.deepEqual(parse(text, { version: '1.1' }), value);
  assert.deepEqual(parse(text), value);
});

test("labels: people's own first, then prefixed ones such as kport.dev/*", () => {
  assert.equal(
    formatLabels({ 'kport.dev/origin': 'cloud', team: 'a', 'kport.dev/cloud': 'AWS', region: 'us-east-1' }),
    'region=us-east-1,team=a,kport.dev/cloud=AWS,kport.dev/origin=cloud',
  );
});

test('discover run lines: "1 matching cluster"; the dashboard escapes what others wrote', () => {
  assert.equal(describeEvent({ type: 'scope', scope: 's', state: 'done', clusters: 1 }, 'g'), 's: 1 matching cluster');
  assert.equal(describeEvent({ type: 'scope', scope: 's', state: 'done', clusters: 2 }, 'g'), 's: 2 matching clusters');
  let state = reduceDashboard(initialDashboard('g'), { type: 'scope', scope: 'r\u001b[2J', state: 'failed', error: 'AccessDenied\u0007\u202e' });
  state = reduceDashboard(state, { type: 'conflict', name: 'x\u001b]0;t\u0007' });
  state = reduceDashboard(state, { type: 'state', state: 'standby', leader: '\u001b[31mhost' });
  assert.doesNotMatch(JSON.stringify(state).replace(/\\\\/g, ''), /\\u00(1b|07)|\\u202e/);
});

test('discover run -o json: stderr lines are {time, level, message} with the event beside; failures are warnings', async () => {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c) => (err += c));
  const ctx = createContext({ stdout: new PassThrough(), stderr });
  ctx.logger.json = true;
  const report = await discoveryReporter(ctx, 'json', 'g');
  report.event({ type: 'poll-start', at: new Date('2026-01-01T00:00:00Z') });
  report.event({ type: 'scope', scope: 'matcher 0 / us-east-1', state: 'failed', error: 'AccessDenied' });
  report.event({
    type: 'poll-done',
    at: new Date(),
    stats: { durationMs: 5, seen: 1, created: 1, updated: 0, deleted: 0, awsCalls: 2, failures: [] },
    changes: { created: ['a'], updated: [], deleted: [] },
  });
  const lines = err
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  for (const l of lines) assert.deepEqual(Object.keys(l).slice(0, 3), ['time', 'level', 'message']);
  assert.deepEqual(
    lines.map((l) => l.level),
    ['info', 'warning', 'info'],
  );
  assert.equal(lines[1].message, 'matcher 0 / us-east-1: FAILED: AccessDenied');
  assert.equal(lines[2].event.stats.aws_calls, 2);
});
