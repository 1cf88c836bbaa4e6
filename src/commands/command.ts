import type { Context } from '../core/context.ts';
import type { Session } from './session.ts';

export interface OptionDef {
  flags: string;
  description: string;
  default?: string | boolean;
  choices?: string[];
}

/** One leaf command (docs/style.md 3): its surface, and a handler that parses and renders. */
export interface CommandDef {
  /** ["tokens", "add"] */
  path: string[];
  summary: string;
  /** 1-3 command lines shown under --help, as people type them. */
  examples: string[];
  /** commander argument specs, such as "<kind>" or "[clusters...]" */
  args?: string[];
  options?: OptionDef[];
  /** The command runs the store itself (server start, discover run): it never goes through a login profile. */
  localStore?: boolean;
  run(input: CommandInput): Promise<number | void>;
}

export interface CommandInput {
  args: string[];
  /** Everything after a literal `--`. */
  rest: string[];
  opts: Record<string, unknown>;
  ctx: Context;
  session: Session;
}
