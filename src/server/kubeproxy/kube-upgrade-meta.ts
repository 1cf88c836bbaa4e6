import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { requestInfo } from '../../kube/request-info.ts';
import type { RoleSet } from '../../roles/evaluate.ts';
import { newSessionId } from '../../reversetunnel/identity.ts';
import type { KubeGrant } from './kube-authorize.ts';
import { requestTarget, type RequestTarget } from '../events/recording/decision.ts';

// An upgrade (exec, attach, port-forward) as the server's Kubernetes proxy describes it to the
// session recorder (kubeproxy/recording-hooks.ts drives it), and what the recorder may say back.

/** What a session recorder learns of an upgrade (exec, attach, port-forward) before any byte moves. */
export interface UpgradeMeta {
  sessionId: string;
  person: string;
  cluster: string;
  clusterLabels: Record<string, string>;
  kubeUser: string;
  kubeGroups: string[];
  namespace: string;
  pod: string;
  subresource: string;
  container: string;
  command: string[];
  /** The Upgrade header, lower case: `websocket` or `spdy/3.1`. */
  protocol: string;
  /** The WebSocket subprotocols asked for (v5.channel.k8s.io, ...). */
  subprotocols: string[];
  roles: RoleSet;
  /** What the upgrade reaches: a pod's exec, a kubelet through nodes/NAME/proxy, ... */
  target: RequestTarget;
}

export interface UpgradeHooks {
  /** A sentence refusing the upgrade (a role requires recording this protocol, or the recordings' store now, cannot give), or undefined. */
  refusal?(meta: UpgradeMeta): string | undefined | Promise<string | undefined>;
  /**
   * The agent answered 101: the recorder attaches to both sides before any upgraded byte is relayed.
   * `heads` are what already moved: the agent's 101 head, and the person's bytes sent with the request.
   * `closedBecause` says why the server ended the person's connection (person locked, certificate expired), once it did.
   */
  onUpgrade?(
    meta: UpgradeMeta & { hostId: string; closedBecause?: () => string | undefined },
    clientSocket: Duplex,
    tunnelStream: Duplex,
    heads: { answer: Buffer; client: Buffer },
  ): void;
}

/** What the recorder is told of an allowed upgrade, before any byte moves; its session id is new. */
export function upgradeMeta(admitted: KubeGrant, req: IncomingMessage): UpgradeMeta {
  const info = requestInfo(req.method ?? 'GET', admitted.path);
  const query = new URLSearchParams(admitted.path.split('?')[1] ?? '');
  return {
    sessionId: newSessionId(),
    person: admitted.person.caller.person,
    cluster: admitted.cluster.metadata.name,
    clusterLabels: admitted.cluster.metadata.labels ?? {},
    kubeUser: admitted.user,
    kubeGroups: admitted.groups,
    namespace: info.namespace,
    pod: info.name,
    subresource: info.subresource,
    container: query.get('container') ?? '',
    command: query.getAll('command'),
    protocol: String(req.headers.upgrade ?? '').toLowerCase(),
    subprotocols: String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
    roles: admitted.person.roles,
    target: requestTarget(info, admitted.path),
  };
}
