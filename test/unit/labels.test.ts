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

test('invalid regular expressions are reported', () => {
  assert.deepEqual(validateSelector({ env: 'prod' }), []);
  assert.match(validateSelector({ env: '^(unclosed$' })[0] ?? '', /env: invalid regular expression/);
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
