import type { Duplex } from 'node:stream';
import type { UpgradeHooks, UpgradeMeta } from './kube-upgrade-meta.ts';
import { recordingDecision, upgradeRefusal } from '../events/recording/decision.ts';
import type { SessionRecorder } from '../events/recording/recorder.ts';

/** A pod's exec and attach are sessions; port-forward is not, and is not recorded (events/recording/decision.ts says what is refused). */
const isSession = (meta: UpgradeMeta) => meta.target.resource === 'pods' && (meta.subresource === 'exec' || meta.subresource === 'attach');

/** What the WebSocket asked for, or the SPDY version: the form recordingDecision and the recorder read. */
const protocolOf = (meta: UpgradeMeta) => (meta.protocol === 'websocket' ? meta.subprotocols.join(', ') : meta.protocol);

/**
 * The routing's upgrade hooks, driving the recorder: a session a role requires recorded but this
 * protocol cannot give is refused before it reaches an agent, and so is, under that requirement,
 * every upgrade but exec, attach and port-forward (events/recording/decision.ts); every exec and attach is started
 * (SPDY too, so session.start says recorded: false), fed both directions, and ended when either closes.
 */
export function recordingHooks(recorder: SessionRecorder): UpgradeHooks {
  return {
    async refusal(meta) {
      // Every other upgrade (a kubelet's, a proxy's) is refused under require_session_recording but a port-forward.
      if (!isSession(meta)) return upgradeRefusal(meta.target, protocolOf(meta), meta.roles, meta.clusterLabels);
      // Asked of the recordings' store now for every session (a bucket: one HeadBucket):
      // whether onUpgrade records it follows, and a session that must be recorded starts only if it can be.
      const down = await recorder.available();
      const decision = recordingDecision(protocolOf(meta), meta.roles, meta.clusterLabels);
      if (!decision.required) return decision.refusal;
      // Told before the session starts, with what is used, rather than cut off after its upgrade; and
      // before the SPDY refusal: kubectl retries a refused WebSocket exec over SPDY, and that answer is
      // the one it prints.
      if (down)
        return `a role that lets you reach this cluster sets require_session_recording, and the server cannot store recordings now (${down}): try again later, or ask an operator to check auth_service.audit_sessions_uri`;
      const full = recorder.noRoom(meta.person);
      if (full)
        return `a role that lets you reach this cluster sets require_session_recording, and the server has no room to record this session (${full}): ask an operator to make room in the server's recordings directory`;
      return decision.refusal;
    },
    onUpgrade(meta, client: Duplex, tunnel: Duplex, heads) {
      if (!isSession(meta)) return;
      const recording = recorder.start({
        sessionId: meta.sessionId,
        person: meta.person,
        cluster: meta.cluster,
        kubeUser: meta.kubeUser,
        kubeGroups: meta.kubeGroups,
        namespace: meta.namespace,
        pod: meta.pod,
        ...(meta.container && { container: meta.container }),
        ...(meta.command.length > 0 && { command: meta.command.join(' ') }),
        protocol: protocolOf(meta),
        kind: meta.subresource as 'exec' | 'attach',
      });
      // The total cap reached and a role requires recording: the session must not go on unrecorded.
      if (!recording.recorded && recordingDecision(protocolOf(meta), meta.roles, meta.clusterLabels).required) {
        void recording.end('recording is required and the server could not record it');
        client.destroy();
        tunnel.destroy();
        return;
      }
      recording.fromUpstream(heads.answer);
      if (heads.client.length > 0) recording.fromClient(heads.client);
      tunnel.on('data', (chunk: Buffer) => recording.fromUpstream(chunk));
      client.on('data', (chunk: Buffer) => recording.fromClient(chunk));
      // Ended by the server (the person locked or removed, their certificate expired): session.end says why.
      const end = () => void recording.end(meta.closedBecause?.());
      tunnel.once('close', end);
      client.once('close', end);
    },
  };
}
