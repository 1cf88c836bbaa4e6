import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchLabels, parseLabelList, validateSelector } from '../../src/resources/labels.ts';
import { parseDuration } from '../../src/core/duration.ts';

const labels = { env: 'prod', team: 'payments', region: 'us-east-1' };

test('label selectors: exact, list = any, *, glob, ^regex$, all keys required', () => {
  const cases: Array<[Record<string, string | string[]>, boolean]> = [
    [{ env: 'prod' }, true],
    [{ env: 'dev' }, false],
    [{ env: ['dev', 'prod'] }, true],
    [{ env: '*' }, true],
    [{ missing: '*' }, false],
    [{ '*': '*' }, true],
    [{ team: 'pay*' }, true],
    [{ team: 'pay?ents' }, true],
    [{ team: 'pay' }, false],
    [{ region: '^us-(east|west)-[0-9]$' }, true],
    [{ region: '^eu-.*$' }, false],
    [{ env: 'prod', team: 'billing' }, false],
    [{ env: 'PROD' }, false],
    [{ team: 'pay.ments' }, false],
    [{}, true],
  ];
  for (const [selector, expected] of cases) assert.equal(matchLabels(selector, labels), expected, JSON.stringify(selector));
});

test('invalid regular expressions, and patterns RE2 does not accept, are reported', () => {
  assert.deepEqual(validateSelector({ env: 'prod' }), []);
  assert.match(validateSelector({ env: '^(unclosed$' })[0] ?? '', /env: \^\(unclosed\$ is not a regular expression RE2 accepts/);
  // Lookarounds and backreferences need backtracking: Go's regexp (and so Teleport) refuses them too.
  assert.match(validateSelector({ env: '^(?=prod).*$' })[0] ?? '', /RE2/);
  assert.match(validateSelector({ env: '^(a)\\1$' })[0] ?? '', /RE2/);
});

test('matching takes linear time whatever the pattern and value (a tag is attacker-controlled)', () => {
  // Each of these takes minutes to hours with a backtracking engine.
  const near = `${'a'.repeat(30_000)}!`;
  const started = performance.now();
  assert.equal(matchLabels({ env: '^(a+)+$' }, { env: near }), false);
  assert.equal(matchLabels({ env: '^(a|aa)*$' }, { env: near }), false);
  assert.equal(matchLabels({ env: '^(.*a){20}$' }, { env: near }), false);
  assert.equal(matchLabels({ env: `${'*a'.repeat(20)}b` }, { env: near }), false);
  assert.equal(matchLabels({ env: `${'*a'.repeat(20)}*` }, { env: near }), true);
  const elapsed = performance.now() - started;
  // Generous: a backtracking engine does not finish these at all; linear ones take milliseconds.
  assert.ok(elapsed < 5_000, `took ${Math.round(elapsed)} ms`);
});

test('RE2 semantics: anchors cover the whole value, no multi-line surprises', () => {
  assert.equal(matchLabels({ env: '^prod$' }, { env: 'prod\n' }), false);
  assert.equal(matchLabels({ env: '^pro.$' }, { env: 'prod' }), true);
  assert.equal(matchLabels({ env: '^(?i)PROD$' }, { env: 'prod' }), true);
  assert.equal(matchLabels({ env: '^\\p{Greek}+$' }, { env: 'αβγ' }), true);
});

test('--labels parsing', () => {
  assert.deepEqual(parseLabelList('a=1, b = two,c='), { a: '1', b: 'two', c: '' });
  assert.throws(() => parseLabelList('novalue'), /use key=value/);
});

test('durations', () => {
  assert.equal(parseDuration('30m'), 1_800_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  for (const bad of ['', '5', '5x', 'm5', '1h 30m']) assert.throws(() => parseDuration(bad), /Invalid duration/, bad);
});
