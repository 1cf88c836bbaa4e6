import { UserError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import { AGENT } from '../../resources/agent.ts';
import { resourceKey } from '../../resources/resource.ts';
import type { Session } from '../session.ts';
import type { CommandDef } from '../command.ts';

export const agentsRm: CommandDef = {
  path: ['agents', 'rm'],
  summary: 'Remove an agent: its certificate is refused from its next call on',
  examples: ['kport agents rm 5b8f3c2e-1d4a-4e8b-9f2a-0c1d2e3f4a5b'],
  args: ['<host_id>'],
  async run({ args, ctx, session }) {
    const hostId = args[0]!;
    const { checkLookupName } = await import('../../resources/lookup.ts');
    checkLookupName('agent', hostId);
    if (!(await removeAgent(session, hostId))) {
      throw new UserError(`agent "${hostId}" not found: see \`kport agents ls\` for the host ids.`);
    }
    ctx.stdout.write(`agent ${printable(hostId)} has been removed; its next call to the server is refused and it stops.\n`);
  },
};

/**
 * Removes the agent and what it said about itself (src/server/auth/agent-removal.ts). Also `kport rm agent/HOST_ID`.
 * Through the server, a person's delete of the agent's record is that removal, run and audited by
 * the server as the person (src/server/auth/person-calls.ts): leader keys and the audit trail are not
 * a person's to touch, so the client sends that one delete and nothing else. On the server host it
 * is one agent.remove event naming the OS user, as through the server it names the person.
 */
export async function removeAgent(session: Session, hostId: string): Promise<boolean> {
  const backend = await session.backend();
  if (backend.kind === 'remote') return backend.delete(resourceKey(AGENT, hostId));
  const [{ removeAgent: remove }, { raw, actor }] = await Promise.all([import('../../server/auth/agent-removal.ts'), session.hostStore()]);
  return remove(raw, hostId, actor.audit, { user: actor.user, remote_addr: actor.remote_addr, reason: `removed by ${actor.user}` });
}
