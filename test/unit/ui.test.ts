import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createElement } from 'react';
import { render } from 'ink-testing-library';
import { DiscoveryDashboard, initialDashboard, reduceDashboard } from '../../src/ui/discovery-dashboard.ts';

test('the discovery dashboard shows scanning regions, failures, counts and the next poll', () => {
  let state = initialDashboard('aws-prod');
  state = reduceDashboard(state, { type: 'state', state: 'leader' });
  state = reduceDashboard(state, { type: 'poll-start', at: new Date('2026-11-24T12:00:00Z') });
  state = reduceDashboard(state, { type: 'scope', scope: 'matcher 0 / account 1 / us-east-1', state: 'scanning' });
  state = reduceDashboard(state, {
    type: 'scope',
    scope: 'matcher 0 / account 1 / eu-west-1',
    state: 'failed',
    error: 'AccessDenied: eks:ListClusters is not allowed',
  });
  const scanning = render(createElement(DiscoveryDashboard, { state, now: new Date('2026-11-24T12:00:01Z') }));
  const frame = scanning.lastFrame() ?? '';
  assert.match(frame, /kport discovery · group aws-prod · scanning 1\/2 regions/);
  assert.match(frame, /… matcher 0 \/ account 1 \/ us-east-1/);
  assert.match(frame, /✗ matcher 0 \/ account 1 \/ eu-west-1: AccessDenied: eks:ListClusters is not allowed/);
  scanning.unmount();
  state = reduceDashboard(state, {
    type: 'poll-done',
    at: new Date('2026-11-24T12:00:02Z'),
    stats: { durationMs: 1200, seen: 7, created: 2, updated: 1, deleted: 0, awsCalls: 30, failures: [] },
    changes: { created: ['a', 'b'], updated: ['c'], deleted: [] },
  });
  state = reduceDashboard(state, { type: 'sleep', nextPoll: new Date('2026-11-24T12:05:00Z') });
  const idle = render(createElement(DiscoveryDashboard, { state, now: new Date('2026-11-24T12:04:00Z') }));
  const after = idle.lastFrame() ?? '';
  assert.match(after, /idle/);
  assert.match(after, /last poll: 7 clusters · \+2 ~1 -0 · 1200 ms/);
  assert.match(after, /next poll in 60s · Ctrl-C to stop/);
  idle.unmount();
  const standby = render(
    createElement(DiscoveryDashboard, { state: reduceDashboard(state, { type: 'state', state: 'standby', leader: 'abcdef1234' }), now: new Date() }),
  );
  assert.match(standby.lastFrame() ?? '', /standby \(leader abcdef12\)/);
  standby.unmount();

  // Ctrl-C: the last frame says what happens, never a "next poll" that will not come.
  const stopped = render(
    createElement(DiscoveryDashboard, { state: reduceDashboard(state, { type: 'stopping', polling: false }), now: new Date('2026-11-24T12:04:00Z') }),
  );
  assert.match(stopped.lastFrame() ?? '', /stopped/);
  assert.doesNotMatch(stopped.lastFrame() ?? '', /next poll/);
  stopped.unmount();
  const polling = reduceDashboard(reduceDashboard(state, { type: 'poll-start', at: new Date() }), { type: 'stopping', polling: true });
  const finishing = render(createElement(DiscoveryDashboard, { state: polling, now: new Date() }));
  assert.match(finishing.lastFrame() ?? '', /finishing the poll in flight \(Ctrl-C again to abort\)/);
  finishing.unmount();
});
