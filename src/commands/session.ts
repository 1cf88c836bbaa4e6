import type { Backend } from '../backend/backend.ts';
import type { PersonClient, Where } from '../client/person.ts';
import type { HostStore } from '../server/events/host-audit.ts';
import { UserError } from '../core/errors.ts';
import { checkDataDir } from '../core/file-trust.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { Context } from '../core/context.ts';
import { parseFormat, terminalSafeJson, type Format } from '../core/output.ts';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  debug?: boolean;
  /** --format, -o or --output (kubectl's spelling): one flag, so the last one given wins. */
  format?: string;
}

/** Lazily loaded configuration and backend for one invocation, closed at the end. */
export class Session {
  readonly ctx: Context;
  readonly globals: GlobalOptions;
  #config?: Promise<LoadedConfig>;
  #backend?: Promise<Backend>;
  #host?: Promise<HostStore>;
  #where?: Promise<Where>;
  #person?: Promise<PersonClient | undefined>;
  readonly #localStore: boolean;

  /** `localStore`: the command runs the store itself (server start, discover run), never through a login profile. */
  constructor(ctx: Context, globals: GlobalOptions, opts: { localStore?: boolean } = {}) {
    this.ctx = ctx;
    this.globals = globals;
    this.#localStore = opts.localStore ?? false;
  }

  /** Whether commands run on the local store or through the server of the login profile, and why. */
  where(): Promise<Where> {
    this.#where ??= import('../client/person.ts').then(({ decideWhere }) =>
      decideWhere({ env: this.ctx.env, config: this.globals.config, dataDir: this.globals.dataDir, localStore: this.#localStore }),
    );
    return this.#where;
  }

  /** The person's connection to the server, when commands run through one; an expired login throws (exit 4). */
  person(): Promise<PersonClient | undefined> {
    this.#person ??= (async () => {
      const where = await this.where();
      if (where.via === 'local') return undefined;
      const { PersonClient } = await import('../client/person.ts');
      return new PersonClient(where, { now: this.ctx.now(), signal: this.ctx.signal, warn: (m) => this.ctx.logger.warn(m) });
    })();
    return this.#person;
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

  /**
   * The store: the server's, through the login profile, or the local one (see where()). Every write
   * to a local store is audited as the OS user's (src/server/events/host-audit.ts), except in commands that
   * run the store themselves (server start, discover run), whose writes are their own.
   */
  backend(): Promise<Backend> {
    this.#backend ??= (async () => {
      const person = await this.person();
      if (person) return person.backend;
      const host = await this.hostStore();
      return this.#localStore ? host.raw : host.audited;
    })();
    return this.#backend;
  }

  /** The local store and the OS user who changes it, with the audit trail their events go to. */
  hostStore(): Promise<HostStore> {
    this.#host ??= (async () => {
      const config = await this.config();
      if (config.teleport.proxy_server) {
        // An agent's config: the store is the server's, and this machine must not grow a second one.
        throw new UserError(
          `${config.source ?? 'The configuration'} joins the kport server at ${config.teleport.proxy_server} (teleport.proxy_server), so there is no store here: run this command on the server, with the server's config.`,
          2,
        );
      }
      // Before the store opens: another user's data dir is refused (its store and seal key are theirs to choose).
      checkDataDir(config.dataDir, (m) => this.ctx.logger.warn(m));
      const [{ openBackend }, { hostStore }] = await Promise.all([import('../backend/open.ts'), import('../server/events/host-audit.ts')]);
      const backend = await openBackend(config.teleport.storage, config.dataDir);
      return hostStore(backend, {
        retentionMs: config.auth_service?.audit_retention,
        log: (line) => this.ctx.logger.debug(terminalSafeJson(line)),
        now: this.ctx.now,
      });
    })();
    return this.#host;
  }

  async close(): Promise<void> {
    const backend = await this.#backend?.catch(() => undefined);
    const host = await this.#host?.catch(() => undefined);
    await (backend ?? host?.raw)?.close();
    (await this.#person?.catch(() => undefined))?.close();
  }
}
