import { UserError } from '../../core/errors.ts';
import { printable } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export const agentsRm: CommandDef = {
  path: ['agents', 'rm'],
  summary: 'Remove an agent: its certificate is refused from its next call on',
  examples: [
    'kport agents rm 5b8f3c2e-1d4a-4e8b-9f2a-0c1d2e3f4a5b',
  ],
  args: ['<host_id>'],
  async run({ args, ctx, session }) {
    const [{ resourceKey }, { AGENT }] = await Promise.all([import('../../resources/resource.ts'), import('../../resources/agent.ts')]);
    const hostId = args[0]!;
    const backend = await session.backend();
    // The server checks the store on every call: once the record is gone, so is the agent.
    if (!(await backend.delete(resourceKey(AGENT, hostId)))) throw new UserError(`agent "${hostId}" not found: see \`kport agents ls\` for the host ids.`);
    ctx.stdout.write(`agent ${printable(hostId)} has been removed; its next call to the server is refused and it stops.\n`);
  },
};
