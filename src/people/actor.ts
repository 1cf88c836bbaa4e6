import type { AuditEventSpec } from '../resources/audit-event.ts';

/**
 * Who changes the people of the cluster, for the audit trail: an editor's certificate at the
 * server, or the OS user on the server host (src/server/events/host-audit.ts).
 */
export interface Actor {
  audit?: { record(spec: Omit<AuditEventSpec, 'time'>): Promise<void> };
  user?: string;
  remote_addr?: string;
}

export async function audited(actor: Actor | undefined, type: string, action: string): Promise<void> {
  await actor?.audit?.record({
    type,
    outcome: 'allowed',
    action,
    ...(actor.user && { user: actor.user }),
    ...(actor.remote_addr && { remote_addr: actor.remote_addr }),
  });
}
