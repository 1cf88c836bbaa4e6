import { SHELLS, completionScript, type CompletionTree, type Shell } from '../../core/completion.ts';
import { UsageError } from '../../core/errors.ts';
import type { CommandDef } from '../command.ts';

/** `tree`: the command tree, handed in by the registry (commands/index.ts), which lists this command too. */
export const completionCommand = (tree: () => CompletionTree): CommandDef => ({
  path: ['completion'],
  summary: 'Print a shell completion script: bash, zsh or fish',
  examples: ['kport completion bash > /etc/bash_completion.d/kport', 'kport completion zsh > "${fpath[1]}/_kport"'],
  args: ['<shell>'],
  async run({ args, ctx }) {
    const shell = args[0] as Shell;
    if (!SHELLS.includes(shell)) throw new UsageError(`Unknown shell "${shell}": use one of ${SHELLS.join(', ')}.`);
    ctx.stdout.write(completionScript(shell, tree()));
  },
});
