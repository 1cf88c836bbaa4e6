import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { UserError, UsageError } from '../../core/errors.ts';
import { keyPath, yamlErrorText } from '../../config/errors.ts';
import { lookupKind } from '../../resources/registry.ts';
import type { Resource } from '../../resources/resource.ts';
import { createResource, upsertResource } from '../../resources/store.ts';
import type { CommandDef } from '../command.ts';

export const create: CommandDef = {
  path: ['create'],
  summary: 'Create resources (role, user, static kube_cluster) from a YAML file',
  options: [
    { flags: '-f, --file <file>', description: 'YAML or JSON file with one or more documents ("-" for stdin)' },
    { flags: '--force', description: 'overwrite resources that already exist' },
  ],
  async run({ opts, ctx, session }) {
    if (typeof opts.file !== 'string') throw new UsageError('-f FILE is required: kport create -f role.yaml.');
    const text = opts.file === '-' ? await readStream(process.stdin) : await readText(resolve(ctx.cwd, opts.file));
    const resources = await parseResources(text, opts.file);
    const backend = await session.backend();
    if (!opts.force) {
      const { getResource } = await import('../../resources/store.ts');
      for (const r of resources) {
        if (await getResource(backend, r.kind, r.metadata.name)) {
          throw new UserError(`${r.kind} "${r.metadata.name}" already exists: pass --force to overwrite it. Nothing was written.`);
        }
      }
    }
    for (const r of resources) {
      if (opts.force) await upsertResource(backend, r, ctx.now().getTime());
      else if (!(await createResource(backend, r, ctx.now().getTime()))) {
        throw new UserError(`${r.kind} "${r.metadata.name}" was created by someone else meanwhile: run again with --force to overwrite it.`);
      }
      ctx.stdout.write(`${r.kind} "${r.metadata.name}" has been ${opts.force ? 'written' : 'created'}.\n`);
    }
  },
};

/** Validates every document before anything is written, so bad input changes nothing. */
export async function parseResources(text: string, source: string): Promise<Resource[]> {
  const problems: string[] = [];
  const resources: Resource[] = [];
  for (const [i, doc] of parseAllDocuments(text).entries()) {
    const where = `${source} document ${i + 1}`;
    if (doc.errors.length > 0) {
      problems.push(`${where}: invalid YAML at line ${doc.errors[0]!.linePos?.[0]?.line ?? '?'}: ${yamlErrorText(doc.errors[0]!.message)}`);
      continue;
    }
    const raw = doc.toJS() as { kind?: unknown } | null;
    if (raw === null) continue;
    if (typeof raw !== 'object' || typeof raw.kind !== 'string') {
      problems.push(`${where}: every document needs a kind, such as role or kube_cluster`);
      continue;
    }
    const kind = lookupKind(raw.kind);
    if (!kind.schema) {
      problems.push(`${where}: ${kind.kind} resources are created by kport itself, not with create -f`);
      continue;
    }
    const parsed = (await kind.schema()).safeParse(raw);
    if (parsed.success) resources.push(parsed.data);
    else for (const issue of parsed.error.issues) problems.push(`${where}: ${keyPath(issue.path)}: ${issue.message}`);
  }
  if (problems.length > 0) throw new UsageError(`Cannot create resources; nothing was written:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  if (resources.length === 0) throw new UsageError(`${source} holds no resources.`);
  return resources;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`Cannot read ${path}: ${(err as Error).message}.`);
  }
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}
