// What the routing decides for an exec or attach before it opens the tunnel stream.
import type { RoleSet } from '../../../roles/evaluate.ts';

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

/** What an upgrade or a request reaches, as the routing parsed it (request-info.ts). */
export interface RequestTarget {
  resource: string;
  subresource: string;
  /** The decoded path segments after `nodes/NAME/proxy/` (the kubelet's own API), when it goes there. */
  kubeletPath?: string[];
}

/** The kubelet's endpoints that run a command or open a terminal in a container (kubelet server.go, its CRI streaming server). */
const KUBELET_SESSIONS = new Set(['exec', 'attach', 'run', 'cri', 'portforward']);

export function unrecordableRefusal(what: string): string {
  return `a role that lets you reach this cluster sets require_session_recording, and kport records exec and attach only through pods/exec and pods/attach: ${what} could carry an unrecorded session, so it is refused; use kubectl exec or kubectl attach`;
}

/**
 * Under require_session_recording, which upgrades go through: exec and attach as recordingDecision
 * says (recorded over WebSocket, SPDY refused), and port-forward (bytes to a port, not a terminal).
 * Every other upgrade (to a kubelet through nodes/NAME/proxy, to a pod's or a service's proxy, to any
 * other path) could carry a terminal kport does not see as one: refused, named by what it reaches.
 */
export function upgradeRefusal(target: RequestTarget, protocol: string, roleSet: RoleSet, clusterLabels: Record<string, string>): string | undefined {
  if (target.resource === 'pods' && (target.subresource === 'exec' || target.subresource === 'attach'))
    return recordingDecision(protocol, roleSet, clusterLabels).refusal;
  if (!roleSet.requiresSessionRecording(clusterLabels)) return undefined;
  if (target.resource === 'pods' && target.subresource === 'portforward') return undefined;
  return unrecordableRefusal(`an upgrade to ${describe(target)}`);
}

/**
 * Under require_session_recording, a plain request that runs a command at a kubelet
 * (nodes/NAME/proxy/run, .../exec and the like) is refused too: it needs no upgrade to run one.
 */
export function requestRefusal(target: RequestTarget, roleSet: RoleSet, clusterLabels: Record<string, string>): string | undefined {
  const first = target.kubeletPath?.[0]?.toLowerCase();
  if (first === undefined || !KUBELET_SESSIONS.has(first)) return undefined;
  if (!roleSet.requiresSessionRecording(clusterLabels)) return undefined;
  return unrecordableRefusal(`a kubelet's ${first} endpoint (nodes/NAME/proxy/${first})`);
}

function describe(target: RequestTarget): string {
  if (target.kubeletPath) return `a kubelet (nodes/NAME/proxy/${target.kubeletPath.join('/')})`;
  if (target.subresource === 'proxy') return `a ${target.resource === 'services' ? 'service' : target.resource === 'pods' ? 'pod' : target.resource}'s proxy`;
  return target.resource ? `${target.resource}${target.subresource ? `/${target.subresource}` : ''}` : 'this path';
}

/** The target of a path: its resource and subresource, and the kubelet path when it goes through nodes/NAME/proxy. */
export function requestTarget(info: { resource: string; subresource: string; name: string }, pathAndQuery: string): RequestTarget {
  if (info.resource !== 'nodes' || info.subresource !== 'proxy') return { resource: info.resource, subresource: info.subresource };
  const path = pathAndQuery.split('?')[0] ?? '';
  const segments = path
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  // api/v1/nodes/NAME/proxy/...: the first "nodes" is the resource (api and v1 come before it).
  const at = segments.indexOf('nodes');
  return { resource: info.resource, subresource: info.subresource, kubeletPath: segments.slice(at + 3) };
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
