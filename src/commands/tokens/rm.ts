import { UserError } from '../../core/errors.ts';
import { resourceKey } from '../../resources/resource.ts';
import { TOKEN } from '../../resources/token.ts';
import type { CommandDef } from '../command.ts';

export const tokensRm: CommandDef = {
  path: ['tokens', 'rm'],
  summary: 'Delete a join token, by its secret or its name',
  examples: ['kport tokens rm tok-0123456789abcdef', 'kport tokens rm "$(cat /tmp/token)"'],
  args: ['<token>'],
  async run({ args, ctx, session }) {
    const given = args[0]!;
    const backend = await session.backend();
    const { findToken } = await import('../../tokens/tokens.ts');
    const name = given.startsWith('tok-') ? given : (await findToken(backend, given))?.token.metadata.name;
    const deleted = name !== undefined && (await backend.delete(resourceKey(TOKEN, name)));
    if (!deleted)
      throw new UserError(
        `${given.startsWith('tok-') ? `token "${given}" not found` : 'no token has the secret given'}: see \`kport tokens ls\` for the tokens that exist.`,
      );
    ctx.stdout.write(`token "${name}" has been deleted.\n`);
  },
};
