import { Command, CommanderError, Option } from 'commander';
import { COMMANDS, GLOBAL_OPTIONS, NOUN_SUMMARIES, PROGRAM_EXAMPLES } from './commands/index.ts';
import { createContext, type Context } from './core/context.ts';
import { BugError, ExitCode, ExternalError, KportError, describeSystemError } from './core/errors.ts';
import { Session, type GlobalOptions } from './commands/session.ts';
import { parseFormat, printableMessage } from './core/output.ts';
import { kportVersion } from './commands/misc/version.ts';

/** Builds the commander program from the command registry; exported for the command-tree snapshot. */
export function buildProgram(ctx: Context, onRun: (run: () => Promise<number | void>) => void, only?: string): Command {
  const program = new Command('kport')
    .description('Discover EKS clusters by tag and reach them with kubectl through a local proxy')
    .version(kportVersion(), '--version', 'print the version')
    .showSuggestionAfterError()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
      // Commander's errors quote argv: its control characters are shown escaped, as every message's are.
      outputError: (s, write) =>
        ctx.logger.json ? ctx.logger.error(s.replace(/^error: /, '').trim()) : write(printableMessage(s.replace(/^error: /, 'ERROR: '))),
    })
    .exitOverride();
  program.addHelpText('after', examples(PROGRAM_EXAMPLES));
  for (const o of GLOBAL_OPTIONS) {
    const option = new Option(o.flags, o.description);
    // -o and --output write --format's value: one flag, whichever spelling, the last one given wins.
    const attribute = o.attribute;
    if (attribute) option.attributeName = () => attribute;
    program.addOption(option);
  }

  const parents = new Map<string, Command>();
  // Building every command's options costs more than starting Node: when the first word names a
  // command, only that branch is built (help, errors and suggestions elsewhere see the whole tree).
  const selected = only !== undefined && COMMANDS.some((c) => c.path[0] === only) ? COMMANDS.filter((c) => c.path[0] === only) : COMMANDS;
  for (const def of selected) {
    let parent = program;
    if (def.path.length > 1) {
      const noun = def.path[0]!;
      if (!parents.has(noun)) {
        const group = program.command(noun).description(NOUN_SUMMARIES[noun] ?? '');
        // Each verb's first example, so `kport kube --help` shows how the group is used.
        group.addHelpText('after', examples(COMMANDS.filter((c) => c.path[0] === noun).map((c) => c.examples[0]!)));
        parents.set(noun, group);
      }
      parent = parents.get(noun)!;
      parent.copyInheritedSettings(program);
    }
    const cmd = parent.command(def.path.at(-1)!).description(def.summary);
    cmd.addHelpText('after', examples(def.examples));
    cmd.copyInheritedSettings(program);
    for (const a of def.args ?? []) cmd.argument(a);
    for (const o of def.options ?? []) {
      const option = new Option(o.flags, o.description);
      if (o.default !== undefined) option.default(o.default);
      if (o.choices) option.choices(o.choices);
      cmd.addOption(option);
    }
    cmd.action(async (...params: unknown[]) => {
      const command = params.at(-1) as Command;
      const globals = command.optsWithGlobals() as GlobalOptions & Record<string, unknown>;
      const dash = ctxArgv(command);
      const args = (command.args as string[]).slice(0, command.args.length - dash.length);
      onRun(async () => {
        parseFormat(globals.format); // a bad --format fails before anything is written
        const session = new Session(ctx, globals, { localStore: def.localStore });
        if (globals.debug) ctx.logger.debugEnabled = true;
        try {
          return await def.run({ args, rest: dash, opts: command.opts(), ctx, session });
        } finally {
          await session.close();
        }
      });
    });
  }
  return program;
}

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((e) => `  ${e}`).join('\n')}\n`;
}

/** The words before a literal `--`: after it they are another command's. */
function ownWords(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

/**
 * The format asked for, read before commander parses so that its own errors are JSON lines too:
 * --format, --output and -o are one flag (`--format json`, `--output=json`, `-o json`, `-ojson`),
 * and the last one given wins, as commander takes it.
 */
function formatRequested(argv: string[]): string | undefined {
  const words = ownWords(argv);
  let format: string | undefined;
  words.forEach((w, i) => {
    const inline = /^(?:--format=|--output=|-o)(.+)$/.exec(w);
    if (inline) format = inline[1];
    else if (['--format', '--output', '-o'].includes(w)) format = words[i + 1];
  });
  return format?.toLowerCase();
}

/** The words that are not options or global options' values, up to a literal `--`: the command's path, then its arguments. */
function commandWords(argv: string[]): string[] {
  const takesValue = new Set(GLOBAL_OPTIONS.filter((o) => /<\w+>/.test(o.flags)).flatMap((o) => o.flags.split(/[ ,]+/).filter((f) => f.startsWith('-'))));
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') break;
    if (!word.startsWith('-')) words.push(word);
    else if (takesValue.has(word)) i++;
  }
  return words;
}

/** The first word that is not a global option or its value: the command's noun. */
function firstWord(argv: string[]): string | undefined {
  return commandWords(argv)[0];
}

const HELP_FLAGS = new Set(['--help', '-h']);

/**
 * Help asked for a command that does not exist (`kport nosuch --help`, `kport users nosuch -h`,
 * `kport help nosuch`): commander would print the nearest known command's help and exit 0, as if
 * the command were real. Returns argv without the help request, so that commander says "unknown
 * command" with its nearest match (exit 2) as it does without --help; undefined otherwise.
 */
function helpForUnknownCommand(argv: string[]): string[] | undefined {
  const own = ownWords(argv);
  let path = commandWords(own);
  const viaHelpCommand = path[0] === 'help';
  if (viaHelpCommand) path = path.slice(1);
  if (!viaHelpCommand && !own.some((w) => HELP_FLAGS.has(w))) return undefined;
  const [noun, verb] = path;
  if (noun === undefined) return undefined;
  const ofNoun = COMMANDS.filter((c) => c.path[0] === noun);
  // A leaf command (`get`, `version`) takes arguments after its name; a noun's next word is its verb.
  const known = ofNoun.length > 0 && (verb === undefined || ofNoun.some((c) => c.path.length === 1 || c.path[1] === verb));
  if (known) return undefined;
  const rest = argv.slice(own.length);
  const words = own.filter((w) => !HELP_FLAGS.has(w));
  if (viaHelpCommand) words.splice(words.indexOf('help'), 1);
  return [...words, ...rest];
}

/** The words after a literal `--`, which commander leaves in args. */
function ctxArgv(command: Command): string[] {
  let root: Command = command;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs: string[] }).rawArgs;
  const at = raw.indexOf('--');
  return at < 0 ? [] : raw.slice(at + 1);
}

/** Runs kport; returns the exit code. Only the launcher exits (docs/style.md 2). */
export async function main(argv: string[], ctx: Context): Promise<number> {
  if (firstWord(argv) === '__complete') return (await import('./commands/misc/complete.ts')).completeNames(argv, ctx);
  argv = helpForUnknownCommand(argv) ?? argv;
  let run: (() => Promise<number | void>) | undefined;
  ctx.logger.json = formatRequested(argv) === 'json';
  // Read here, not from commander's --no-color, so that its own parse errors are not painted either.
  if (ownWords(argv).includes('--no-color')) ctx.logger.color = false;
  const program = buildProgram(ctx, (r) => (run = r), firstWord(argv));
  if (argv.length === 0) {
    program.outputHelp();
    return ExitCode.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? ExitCode.ok : ExitCode.usage;
    }
    return reportError(ctx, err, argv.includes('--debug'));
  }
  if (!run) return ExitCode.ok;
  try {
    return (await run()) ?? ExitCode.ok;
  } catch (err) {
    return reportError(ctx, err, argv.includes('--debug'));
  }
}

function reportError(ctx: Context, err: unknown, debug: boolean): number {
  if (err instanceof KportError && !(err instanceof BugError)) {
    ctx.logger.error(err.message);
    if (err instanceof ExternalError) ctx.logger.debug(`while calling ${err.call}`);
    if (debug && err.stack) ctx.stderr.write(`${printableMessage(err.stack)}\n`);
    return err.exitCode;
  }
  if ((err as Error)?.name === 'AbortError') return ExitCode.interrupted;
  // The machine said no (a read-only or full disk, a busy port): not a bug, and the cause is known.
  const system = describeSystemError(err);
  if (system) {
    ctx.logger.error(system);
    if (debug && err instanceof Error && err.stack) ctx.stderr.write(`${printableMessage(err.stack)}\n`);
    return ExitCode.failure;
  }
  const message = err instanceof Error ? err.message : String(err);
  ctx.logger.error(`${message}\nThis is a bug in kport; please report it with the output of --debug.`);
  if (debug && err instanceof Error && err.stack) ctx.stderr.write(`${printableMessage(err.stack)}\n`);
  return ExitCode.failure;
}

export { createContext };
