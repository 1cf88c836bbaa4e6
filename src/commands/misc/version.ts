import { readFileSync } from 'node:fs';
import { serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

export function kportVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export const version: CommandDef = {
  path: ['version'],
  summary: 'Print the kport version',
  async run({ ctx, session }) {
    const info = { version: kportVersion(), node: process.versions.node, platform: `${process.platform}/${process.arch}` };
    const format = session.format;
    if (format !== 'text') return void ctx.stdout.write(serialize(info, format));
    ctx.stdout.write(`kport v${info.version} node v${info.node} ${info.platform}\n`);
  },
};
