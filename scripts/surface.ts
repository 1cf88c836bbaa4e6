// The committed views of the command surface: completions/ and test/commands.snapshot.txt.
// `npm run surface` rewrites them; test/e2e/surface.test.ts fails when they drift.
import { writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import { completionTree } from '../src/commands/index.ts';
import { SHELLS, completionScript } from '../src/core/completion.ts';
import { buildProgram, createContext } from '../src/main.ts';

export function surfaceFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const shell of SHELLS) files[`completions/kport.${shell}`] = completionScript(shell, completionTree());
  files['test/commands.snapshot.txt'] = commandSnapshot();
  return files;
}

function commandSnapshot(): string {
  const ctx = createContext({ stdout: new PassThrough(), stderr: new PassThrough() });
  const program = buildProgram(ctx, () => {});
  const lines: string[] = [];
  const walk = (cmd: Command, prefix: string) => {
    const name = `${prefix}${cmd.name()}`;
    lines.push(`## ${name}`, cmd.helpInformation().trimEnd(), '');
    for (const sub of cmd.commands) walk(sub, `${name} `);
  };
  walk(program, '');
  return `${lines.join('\n')}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [path, text] of Object.entries(surfaceFiles())) writeFileSync(new URL(`../${path}`, import.meta.url), text);
}
