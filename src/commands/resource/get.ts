import { UserError } from '../../core/errors.ts';
import { renderTable, serialize } from '../../core/output.ts';
import { parseRef } from '../../resources/registry.ts';
import type { CommandDef } from '../command.ts';

export const get: CommandDef = {
  path: ['get'],
  summary: 'Show resources: kube_cluster, token, role, user, discovery_service',
  args: ['<kind[/name]>'],
  options: [{ flags: '-v, --verbose', description: 'do not truncate columns' }],
  async run({ args, opts, ctx, session }) {
    const { kind, name } = parseRef(args[0]!);
    const backend = await session.backend();
    let resources;
    if (name) {
      const one = await kind.find(backend, name);
      if (!one) throw new UserError(`${kind.kind} "${name}" not found: see \`kport get ${kind.kind}\` for what exists.`);
      resources = [one];
    } else {
      const { listResources } = await import('../../resources/store.ts');
      resources = await listResources(backend, kind.kind);
    }
    const format = session.format;
    if (format !== 'text') {
      const dtos = resources.map(kind.dto);
      return void ctx.stdout.write(serialize(name ? dtos[0] : dtos, format));
    }
    ctx.stdout.write(renderTable(kind.headers, resources.map((r) => kind.row(r, ctx.stdoutIsTTY)), { tty: ctx.stdoutIsTTY, verbose: Boolean(opts.verbose) }));
  },
};
