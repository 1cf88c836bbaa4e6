import { UserError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { Backend } from '../../backend/backend.ts';
import type { Context } from '../../core/context.ts';
import type { CommandDef } from '../command.ts';

export const agentsRm: CommandDef = {
  path: ['agents', 'rm'],
  summary: 'Remove an agent: its certificate is refused from its next call on',
  examples: [
    'kport agents rm 5b8f3c2e-1d4a-4e8b-9f2a-0c1d2e3f4a5b',
  ],
  args: ['<host_id>'],
  async run({ args, ctx, session }) {
    const hostId = args[0]!;
    const config = await session.config();
    if (!(await removeAgent(await session.backend(), hostId, ctx, config.auth_service?.audit_retention))) {
      throw new UserError(`agent "${hostId}" not found: see \`kport agents ls\` for the host ids.`);
    }
    ctx.stdout.write(`agent ${printable(hostId)} has been removed; its next call to the server is refused and it stops.\n`);
  },
};

/**
 * Removes the agent's record (the server reads it on every call: once it is gone, so is the agent),
 * and what it said about itself: it is no longer listed as leading or serving, and a leadership it
 * held passes to a standby now rather than when its lease lapses. Audited, as a join is. False when
 * there is no such agent. Also `kport rm agent/HOST_ID`.
 */
export async function removeAgent(backend: Backend, hostId: string, ctx: Context, auditRetentionMs?: number): Promise<boolean> {
  const [{ resourceKey }, { AGENT }, { DISCOVERY_SERVICE }, { KUBE_SERVER }, { getResource }, { leaderKey }, { ServerAudit }] = await Promise.all([
    import('../../resources/resource.ts'),
    import('../../resources/agent.ts'),
    import('../../resources/discovery-service.ts'),
    import('../../resources/kube-server.ts'),
    import('../../resources/store.ts'),
    import('../../discovery/leadership.ts'),
    import('../../server/audit.ts'),
  ]);
  const agent = await getResource<import('../../resources/agent.ts').Agent>(backend, AGENT, hostId);
  if (!agent || !(await backend.delete(resourceKey(AGENT, hostId)))) return false;
  const beat = await getResource<import('../../resources/discovery-service.ts').DiscoveryService>(backend, DISCOVERY_SERVICE, hostId);
  for (const group of new Set([agent.spec.discovery_group, beat?.spec.discovery_group].filter((g) => g !== undefined))) {
    const held = await backend.get(leaderKey(group));
    if (held?.value.startsWith(`${hostId}/`)) await backend.delete(held.key, held.revision);
  }
  await backend.delete(resourceKey(DISCOVERY_SERVICE, hostId));
  await backend.delete(resourceKey(KUBE_SERVER, hostId));
  await new ServerAudit(backend, { retentionMs: auditRetentionMs, log: () => {}, now: ctx.now }).record({
    type: 'agent.remove',
    outcome: 'allowed',
    host_id: hostId,
    hostname: agent.spec.hostname,
    roles: agent.spec.roles,
    token_name: agent.spec.token_name,
    action: 'agents rm',
    reason: `removed by ${ctx.env.USER || ctx.env.LOGNAME || 'an unknown user'}`,
  });
  return true;
}
