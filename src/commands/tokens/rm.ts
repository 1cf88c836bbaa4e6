import { UserError } from '../../core/errors.ts';
import { resourceKey } from '../../resources/resource.ts';
import { TOKEN } from '../../resources/token.ts';
import type { CommandDef } from '../command.ts';

export const tokensRm: CommandDef = {
  path: ['tokens', 'rm'],
  summary: 'Delete a join token, by its secret or its name',
  examples: [
    'kport tokens rm tok-0123456789abcdef',
    'kport tokens rm "$(cat /tmp/token)"',
  ],
  args: ['<token>'],
  async run({ args, ctx, session }) {
    const given = args[0]!;
    const { hashSecret, tokenName } = await import('../../tokens/tokens.ts');
    const name = given.startsWith('tok-') ? given : tokenName(hashSecret(given));
    const deleted = await (await session.backend()).delete(resourceKey(TOKEN, name));
    if (!deleted) throw new UserError(`token "${given}" not found: see \`kport tokens ls\` for the tokens that exist.`);
    ctx.stdout.write(`token "${name}" has been deleted.\n`);
  },
};
