import { SHELLS, type CompletionTree } from '../core/completion.ts';
import { FORMATS } from '../core/output.ts';
import { KIND_NAMES } from '../resources/kinds.ts';
import type { CommandDef } from './command.ts';
import { completionCommand } from './misc/completion.ts';
import { kubeConfig } from './kube/config.ts';
import { kubeCredentials } from './kube/credentials.ts';
import { kubeLogin } from './kube/login.ts';
import { kubeLs } from './kube/ls.ts';
import { rbacBootstrap } from './rbac/bootstrap.ts';
import { rbacCheck } from './rbac/check.ts';
import { discoverPolicy } from './discover/policy.ts';
import { discoverRun } from './discover/run.ts';
import { version } from './misc/version.ts';
import { create } from './resource/create.ts';
import { get } from './resource/get.ts';
import { rm } from './resource/rm.ts';
import { tokensAdd } from './tokens/add.ts';
import { tokensLs } from './tokens/ls.ts';
import { tokensRm } from './tokens/rm.ts';
import { serverStart } from './server/start.ts';
import { agentsLs } from './agents/ls.ts';
import { agentsRm } from './agents/rm.ts';
import { login } from './auth/login.ts';
import { logout } from './auth/logout.ts';
import { status } from './auth/status.ts';
import { usersAdd } from './users/add.ts';
import { usersLs } from './users/ls.ts';
import { usersRm } from './users/rm.ts';
import { usersLock } from './users/lock.ts';
import { usersUnlock } from './users/unlock.ts';
import { usersUpdate } from './users/update.ts';
import { usersReset } from './users/reset.ts';
import { play } from './play/play.ts';
import { recordingsLs } from './recordings/ls.ts';

const completion = completionCommand(() => completionTree());

/** Every leaf command, in help order. */
export const COMMANDS: CommandDef[] = [
  tokensAdd,
  tokensLs,
  tokensRm,
  serverStart,
  login,
  logout,
  status,
  usersAdd,
  usersLs,
  usersUpdate,
  usersReset,
  usersRm,
  usersLock,
  usersUnlock,
  agentsLs,
  agentsRm,
  discoverRun,
  discoverPolicy,
  kubeLs,
  kubeLogin,
  kubeConfig,
  kubeCredentials,
  rbacBootstrap,
  rbacCheck,
  get,
  rm,
  create,
  play,
  recordingsLs,
  completion,
  version,
];

/** `kport --help`: the first hour, in the order people take it. */
export const PROGRAM_EXAMPLES = [
  'kport tokens add --type=discovery,kube --format=text > /tmp/token',
  'kport discover run -c kport.yaml --token /tmp/token',
  'kport get discovery_service',
  'kport kube ls',
  'kport kube login prod -- kubectl get pods',
];

export const NOUN_SUMMARIES: Record<string, string> = {
  tokens: 'Manage join tokens for discovery and Kubernetes agents',
  discover: 'Run the EKS discovery engine',
  kube: 'List and reach Kubernetes clusters',
  rbac: 'Set up and check the cluster-side permissions the proxy needs',
  server: 'Run the kport server (network mode: agents join it)',
  agents: 'List and remove agents that joined the server',
  users: 'Add, list, change, reset, remove and lock the people who log in to the server',
  recordings: 'List recorded kubectl exec and attach sessions (kport play replays one)',
};

/** `attribute`: the option sets the same value as another one, so the two are one flag. */
export const GLOBAL_OPTIONS: Array<{ flags: string; description: string; attribute?: string }> = [
  { flags: '-c, --config <file>', description: 'config file (default: search kport.yaml, .kportrc*, ..., /etc/kport.yaml; or KPORT_CONFIG)' },
  { flags: '--data-dir <dir>', description: 'where kport keeps its state (default: teleport.data_dir or ~/.local/share/kport)' },
  { flags: '--format <format>', description: 'output format: text, json or yaml' },
  { flags: '-o, --output <format>', description: 'the same as --format, as kubectl spells it', attribute: 'format' },
  { flags: '--debug', description: 'verbose logs and stack traces' },
  { flags: '--no-color', description: 'no colour (also NO_COLOR)' },
];

function flagNames(flags: string): string[] {
  return flags.split(/[ ,|]+/).filter((f) => f.startsWith('-'));
}

export function completionTree(): CompletionTree {
  const options = [...GLOBAL_OPTIONS, ...COMMANDS.flatMap((c) => c.options ?? [])];
  const choices: Record<string, string[]> = {};
  for (const flag of ['--format', '-o', '--output']) choices[flag] = [...FORMATS];
  for (const o of COMMANDS.flatMap((c) => c.options ?? [])) if (o.choices) for (const f of flagNames(o.flags)) choices[f] = o.choices;
  return {
    globalFlags: GLOBAL_OPTIONS.flatMap((o) => flagNames(o.flags)),
    valueFlags: [...new Set(options.filter((o) => /<[^>]+>/.test(o.flags)).flatMap((o) => flagNames(o.flags)))],
    choices,
    commands: COMMANDS.map((c) => ({
      path: c.path,
      summary: c.summary,
      flags: (c.options ?? []).flatMap((o) => flagNames(o.flags)),
      ...(c.path[0] === 'completion' && { words: [...SHELLS] }),
    })),
    kinds: KIND_NAMES,
  };
}
