import { SHELLS, completionScript, type Shell } from '../../core/completion.ts';
import { UsageError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';

export const completion: CommandDef = {
  path: ['completion'],
  summary: 'Print a shell completion script: bash, zsh or fish',
  examples: [
    'kport completion bash > /etc/bash_completion.d/kport',
    'kport completion zsh > "${fpath[1]}/_kport"',
  ],
  args: ['<shell>'],
  async run({ args, ctx }) {
    const shell = args[0] as Shell;
    if (!SHELLS.includes(shell)) throw new UsageError(`Unknown shell "${shell}": use one of ${SHELLS.join(', ')}.`);
    const { completionTree } = await import('../index.ts');
    ctx.stdout.write(completionScript(shell, completionTree()));
  },
};
