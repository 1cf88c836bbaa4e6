import type { Backend } from '../backend/backend.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { Actor } from '../people/actor.ts';
import type { PersonClient } from './person.ts';

/**
 * What a person's side (users, recordings) needs of the command that runs it, declared here so the
 * client does not know the command layer (docs/architecture.md §3); a command's Session
 * (src/commands/session.ts) is one. Either the person's connection, when commands run through a
 * server, or this machine's config and store.
 */
export interface Invocation {
  readonly ctx: { now(): Date };
  /** Undefined when commands run on this machine's store rather than through a login profile. */
  person(): Promise<PersonClient | undefined>;
  config(): Promise<LoadedConfig>;
  /** This machine's store, unaudited (the people service records its own, more telling events), and the OS user who changes it. */
  hostStore(): Promise<{ raw: Backend; actor: Actor }>;
}
