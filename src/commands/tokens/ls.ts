import { renderTable, serialize } from '../../core/output.ts';
import { lookupKind } from '../resource/registry.ts';
import type { CommandDef } from '../command.ts';
import { tokenSummary } from './add.ts';

export const tokensLs: CommandDef = {
  path: ['tokens', 'ls'],
  summary: 'List join tokens (secrets are never shown)',
  examples: ['kport tokens ls', 'kport tokens ls -o json'],
  async run({ ctx, session }) {
    const { listTokens } = await import('../../tokens/tokens.ts');
    const tokens = await listTokens(await session.backend());
    const kind = lookupKind('token');
    const format = session.format;
    // The same shape as `tokens add --format json`, without the secret.
    if (format !== 'text') return void ctx.stdout.write(serialize(tokens.map(tokenSummary), format));
    if (tokens.length === 0 && ctx.stdoutIsTTY) return void ctx.stderr.write('No active tokens found.\n');
    ctx.stdout.write(
      renderTable(
        kind.headers,
        tokens.map((t) => kind.row(t, ctx.stdoutIsTTY)),
        { tty: ctx.stdoutIsTTY },
      ),
    );
  },
};
