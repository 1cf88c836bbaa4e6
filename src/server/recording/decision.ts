// What the routing decides for an exec or attach before it opens the tunnel stream.
import type { RoleSet } from '../../roles/evaluate.ts';

export interface RecordingDecision {
  /** The recorder reads this session's frames (WebSocket only). */
  record: boolean;
  /** A role allowing this cluster sets require_session_recording: an unrecorded session must not start. */
  required: boolean;
  /** Set when the session is refused: the sentence for the person (403). */
  refusal?: string;
}

export const SPDY_REFUSAL =
  'a role that lets you reach this cluster sets require_session_recording, and kport records exec and attach over WebSocket only, while this client asked for SPDY: use kubectl 1.30 or later (it speaks WebSocket), and leave KUBECTL_REMOTE_COMMAND_WEBSOCKETS unset or true';

/**
 * For an exec or attach upgrade (port-forward is not a session: do not ask). `protocol` is the
 * request's Upgrade header (`SPDY/3.1`, `websocket`) or its Sec-WebSocket-Protocol list.
 */
export function recordingDecision(protocol: string, roleSet: RoleSet, clusterLabels: Record<string, string>): RecordingDecision {
  const required = roleSet.requiresSessionRecording(clusterLabels);
  const websocket = !/^spdy\//i.test(protocol.trim());
  if (websocket) return { record: true, required };
  return required ? { record: false, required, refusal: SPDY_REFUSAL } : { record: false, required };
}

export interface SessionTarget {
  kind: 'exec' | 'attach';
  namespace: string;
  pod: string;
  container?: string;
  command?: string;
  tty: boolean;
}

/** The pod, container and command of an exec or attach path (`/api/v1/namespaces/N/pods/P/exec?...`); undefined for anything else. */
export function sessionTarget(pathAndQuery: string): SessionTarget | undefined {
  const url = new URL(pathAndQuery, 'http://kport');
  const match = /^(?:\/k\/[^/]+)?\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|attach)\/?$/.exec(url.pathname);
  if (!match) return undefined;
  const q = url.searchParams;
  const container = q.get('container') ?? undefined;
  const command = q.getAll('command');
  return {
    kind: match[3] as 'exec' | 'attach',
    namespace: decodeURIComponent(match[1]!),
    pod: decodeURIComponent(match[2]!),
    ...(container && { container }),
    ...(command.length > 0 && { command: command.join(' ') }),
    tty: ['true', '1'].includes(q.get('tty') ?? ''),
  };
}
