import type { Writable } from 'node:stream';

/** Human messages on stderr (STYLE.md 6): warnings, notices, debug lines. */
export class Logger {
  debugEnabled: boolean;
  readonly #out: Writable;
  readonly #color: boolean;

  constructor(out: Writable, opts: { debug: boolean; color: boolean }) {
    this.#out = out;
    this.debugEnabled = opts.debug;
    this.#color = opts.color;
  }

  info(message: string): void {
    this.#out.write(`${message}\n`);
  }

  warn(message: string): void {
    this.#out.write(`${this.#paint('33', 'Warning:')} ${message}\n`);
  }

  error(message: string): void {
    this.#out.write(`${this.#paint('31', 'ERROR:')} ${message}\n`);
  }

  debug(message: string): void {
    if (this.debugEnabled) this.#out.write(`${this.#paint('2', 'DEBUG')} ${message}\n`);
  }

  #paint(code: string, text: string): string {
    return this.#color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }
}
