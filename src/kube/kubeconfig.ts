import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { UserError } from '../core/errors.ts';
import type { KubeconfigFile } from '../resources/static-kubeconfig.ts';

type Named = NonNullable<KubeconfigFile['clusters']>[number];

/** The files kubectl reads: $KUBECONFIG (a path list) or ~/.kube/config. */
export function kubeconfigPaths(env: NodeJS.ProcessEnv): string[] {
  const list = env.KUBECONFIG?.split(delimiter).filter(Boolean);
  return list && list.length > 0 ? list : [join(env.HOME ?? homedir(), '.kube', 'config')];
}

/**
 * Merges kubeconfig files as kubectl does (the first file to set current-context wins; the first
 * entry of a name wins), unlike client-node's loadFromDefault. Missing files are skipped.
 */
export function readMergedKubeconfig(env: NodeJS.ProcessEnv): KubeconfigFile {
  const merged: KubeconfigFile = { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  for (const path of kubeconfigPaths(env)) {
    if (!existsSync(path)) continue;
    let file: KubeconfigFile;
    try {
      file = (parse(readFileSync(path, 'utf8')) ?? {}) as KubeconfigFile;
    } catch (err) {
      throw new UserError(`Cannot read kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}.`);
    }
    for (const key of ['clusters', 'users', 'contexts'] as const) {
      for (const entry of file[key] ?? []) {
        if (!merged[key]!.some((e) => e.name === entry.name)) (merged[key] as Named[]).push(entry);
      }
    }
    if (!merged['current-context'] && file['current-context']) merged['current-context'] = file['current-context'];
  }
  return merged;
}

/**
 * The current context as kubectl picks it (the first file of $KUBECONFIG that sets one), without
 * parsing whole files: a platform engineer's kubeconfig holds hundreds of contexts, and `kube ls`
 * only needs this one key. A top-level `current-context:` line is read directly; a file where it
 * is not a plain line (JSON, flow style) is parsed whole.
 */
export function currentContext(env: NodeJS.ProcessEnv): string | undefined {
  for (const path of kubeconfigPaths(env)) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    const line = /^current-context:[ \t]*(.*?)[ \t]*(?:#.*)?$/m.exec(text);
    let value: string | undefined;
    if (line && !/^["'{[&*!|>]/.test(line[1]!)) value = line[1];
    else if (line || /^\s*[{]/.test(text)) {
      try {
        value = ((parse(text) ?? {}) as KubeconfigFile)['current-context'];
      } catch (err) {
        throw new UserError(`Cannot read kubeconfig ${path}: ${(err as Error).message.split('\n')[0]}.`);
      }
    }
    if (value) return value;
  }
  return undefined;
}

/** A client-node KubeConfig for one context (default: the current one), with kubectl's merge rules. */
export async function kubeConfigFor(env: NodeJS.ProcessEnv, context?: string) {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const merged = readMergedKubeconfig(env);
  const name = context ?? merged['current-context'];
  if (!name) throw new UserError(`No kubeconfig context: pass --context (kubeconfig: ${kubeconfigPaths(env).join(delimiter)}).`, 2);
  if (!merged.contexts!.some((c) => c.name === name)) {
    throw new UserError(`Context "${name}" is not in ${kubeconfigPaths(env).join(delimiter)}: see \`kubectl config get-contexts\`.`, 2);
  }
  const kc = new KubeConfig();
  kc.loadFromString(stringify({ ...merged, 'current-context': name }));
  return kc;
}
