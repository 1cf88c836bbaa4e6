import { statSync } from 'node:fs';
import type { Backend } from '../backend/backend.ts';
import { UserError } from './errors.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { Context } from './context.ts';
import { parseFormat, type Format } from './output.ts';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  debug?: boolean;
  /** --format, -o or --output (kubectl's spelling): one flag, so the last one given wins. */
  format?: string;
}

/** Lazily loaded configuration and backend for one invocation, closed at the end. */
/** The data dir holds the store, agent identities and proxy kubeconfigs with client keys: owner only. */
function warnIfOpen(dataDir: string, ctx: Context): void {
  let mode: number;
  try {
    mode = statSync(dataDir).mode & 0o777;
  } catch {
    return;
  }
  if (mode & 0o077) ctx.logger.warn(`the data dir ${dataDir} is open to other users (mode ${mode.toString(8).padStart(4, '0')}): run chmod 700 ${dataDir}.`);
}

export class Session {
  readonly ctx: Context;
  readonly globals: GlobalOptions;
  #config?: Promise<LoadedConfig>;
  #backend?: Promise<Backend>;

  constructor(ctx: Context, globals: GlobalOptions) {
    this.ctx = ctx;
    this.globals = globals;
  }

  get format(): Format {
    return parseFormat(this.globals.format);
  }

  config(): Promise<LoadedConfig> {
    this.#config ??= (async () => {
      const { loadConfig } = await import('../config/load.ts');
      const config = await loadConfig({ file: this.globals.config, dataDir: this.globals.dataDir, cwd: this.ctx.cwd, env: this.ctx.env });
      for (const w of config.warnings) this.ctx.logger.warn(w);
      return config;
    })();
    return this.#config;
  }

  backend(): Promise<Backend> {
    this.#backend ??= (async () => {
      const config = await this.config();
      if (config.teleport.proxy_server) {
        // An agent's config: the store is the server's, and this machine must not grow a second one.
        throw new UserError(
          `${config.source ?? 'The configuration'} joins the kport server at ${config.teleport.proxy_server} (teleport.proxy_server), so there is no store here: run this command on the server, with the server's config.`,
          2,
        );
      }
      const { openBackend } = await import('../backend/open.ts');
      const backend = await openBackend(config.teleport.storage, config.dataDir);
      warnIfOpen(config.dataDir, this.ctx);
      return backend;
    })();
    return this.#backend;
  }

  async close(): Promise<void> {
    if (this.#backend) await (await this.#backend.catch(() => undefined))?.close();
  }
}
