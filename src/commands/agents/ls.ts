import { renderTable, serialize } from '../../core/output.ts';
import { lookupKind } from '../resource/registry.ts';
import type { CommandDef } from '../command.ts';

export const agentsLs: CommandDef = {
  path: ['agents', 'ls'],
  summary: 'List joined agents: host id, hostname, roles, joined, last seen, address',
  examples: ['kport agents ls', 'kport agents ls -o json'],
  async run({ ctx, session }) {
    const [{ listResources }, { AGENT }] = await Promise.all([import('../../resources/store.ts'), import('../../resources/agent.ts')]);
    const kind = lookupKind(AGENT);
    const agents = await listResources(await session.backend(), AGENT);
    if (session.format !== 'text') return void ctx.stdout.write(serialize(agents.map(kind.dto), session.format));
    if (agents.length === 0 && ctx.stdoutIsTTY)
      return void ctx.stderr.write('No agents have joined: give one a token from `kport tokens add --type=discovery`.\n');
    ctx.stdout.write(
      renderTable(
        kind.headers,
        agents.map((a) => kind.row(a, ctx.stdoutIsTTY)),
        { tty: ctx.stdoutIsTTY },
      ),
    );
  },
};
