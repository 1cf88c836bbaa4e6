import { createElement as h, type ReactElement } from 'react';
import { Box, Static, Text } from 'ink';
import { printable } from '../core/output.ts';
import type { DiscoveryEvent, PollStats } from '../discovery/engine.ts';

export interface ScopeRow {
  scope: string;
  state: 'scanning' | 'done' | 'failed';
  clusters?: number;
  error?: string;
}

export interface DashboardState {
  group: string;
  role?: 'leader' | 'standby';
  leader?: string;
  polling: boolean;
  scopes: ScopeRow[];
  last?: PollStats;
  nextPoll?: Date;
  /** Ctrl-C was pressed: the poll in flight finishes its writes, then the agent stops. */
  stopping?: boolean;
  log: string[];
}

export type DashboardEvent =
  | DiscoveryEvent
  | { type: 'sleep'; nextPoll: Date }
  | { type: 'state'; state: 'leader' | 'standby'; leader?: string }
  | { type: 'stopping'; polling?: boolean };

export function initialDashboard(group: string): DashboardState {
  return { group, polling: false, scopes: [], log: [] };
}

/**
 * Folds one discovery event into the dashboard's state; pure, so it is tested without a terminal.
 * What others wrote (AWS errors, another agent's host id, cluster names) is made printable here,
 * before ink writes it to the terminal.
 */
export function reduceDashboard(state: DashboardState, event: DashboardEvent): DashboardState {
  switch (event.type) {
    case 'state':
      return { ...state, role: event.state, leader: event.leader && printable(event.leader) };
    case 'poll-start':
      return { ...state, polling: true, scopes: [], nextPoll: undefined };
    case 'scope': {
      const scope = printable(event.scope);
      const scopes = state.scopes.filter((s) => s.scope !== scope);
      scopes.push({ scope, state: event.state, clusters: event.clusters, error: event.error && printable(event.error) });
      scopes.sort((a, b) => a.scope.localeCompare(b.scope));
      return { ...state, scopes };
    }
    case 'poll-done': {
      const s = event.stats;
      const line = `${event.at.toISOString()} poll: ${s.seen} clusters, ${s.created} created, ${s.updated} updated, ${s.deleted} deleted, ${s.failures.length} failed in ${s.durationMs} ms`;
      return { ...state, polling: false, last: s, log: [...state.log, line] };
    }
    case 'conflict':
      return { ...state, log: [...state.log, `kube_cluster ${printable(event.name)} belongs to another discovery group or is static: left alone`] };
    case 'sleep':
      return { ...state, nextPoll: state.stopping ? undefined : event.nextPoll };
    case 'stopping':
      return { ...state, stopping: true, nextPoll: undefined };
  }
}

/** discover run's live view (docs/style.md 9): log lines above, scopes and counts below. */
export function DiscoveryDashboard({ state, now }: { state: DashboardState; now: Date }): ReactElement {
  const scanned = state.scopes.filter((s) => s.state !== 'scanning').length;
  const failed = state.scopes.filter((s) => s.state === 'failed');
  return h(
    Box,
    { flexDirection: 'column' },
    // biome-ignore lint/correctness/noChildrenProp: ink's Static takes its render function as children, and h() types children as nodes.
    h(Static<string>, { items: state.log, children: (line: string, i: number) => h(Text, { key: i, dimColor: true }, line) }),
    h(
      Text,
      { bold: true },
      `kport discovery · group ${state.group || '(none)'} · `,
      state.role === 'standby'
        ? h(Text, { color: 'yellow' }, `standby${state.leader ? ` (leader ${state.leader.slice(0, 8)})` : ''}`)
        : state.polling
          ? h(Text, { color: 'cyan' }, `scanning ${scanned}/${state.scopes.length} regions`)
          : h(Text, { color: 'green' }, 'idle'),
    ),
    ...state.scopes
      .filter((s) => s.state === 'scanning')
      .slice(0, 8)
      .map((s) => h(Text, { key: s.scope, color: 'cyan' }, `  … ${s.scope}`)),
    ...failed.map((s) => h(Text, { key: s.scope, color: 'red' }, `  ✗ ${s.scope}: ${s.error}`)),
    state.last
      ? h(
          Text,
          null,
          `  last poll: ${state.last.seen} clusters · +${state.last.created} ~${state.last.updated} -${state.last.deleted} · ${state.last.durationMs} ms`,
        )
      : null,
    state.stopping ? h(Text, { color: 'yellow' }, state.polling ? '  finishing the poll in flight (Ctrl-C again to abort)' : '  stopped') : null,
    state.nextPoll
      ? h(Text, { dimColor: true }, `  next poll in ${Math.max(0, Math.round((state.nextPoll.getTime() - now.getTime()) / 1000))}s · Ctrl-C to stop`)
      : null,
  );
}
