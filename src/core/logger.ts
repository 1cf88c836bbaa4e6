import type { Writable } from 'node:stream';
import { printableMessage, terminalSafeJson } from './output.ts';

/**
 * Human messages on stderr (docs/style.md 6): warnings, notices, debug lines. Messages quote what
 * others wrote (argv, hostnames, AWS errors), so their control characters are shown as escapes
 * here, once for every message.
 */
export class Logger {
  debugEnabled: boolean;
  /** With --format json, stderr carries JSON lines too, so a script reading it is never handed plain text. */
  json = false;
  /** Off for a pipe, NO_COLOR and --no-color. */
  color: boolean;
  readonly #out: Writable;

  constructor(out: Writable, opts: { debug: boolean; color: boolean }) {
    this.#out = out;
    this.debugEnabled = opts.debug;
    this.color = opts.color;
  }

  /** `fields` go beside time, level and message in a JSON line; text shows only the message. */
  info(message: string, fields?: Record<string, unknown>): void {
    this.#out.write(this.json ? this.#line('info', message, fields) : `${printableMessage(message)}\n`);
  }

  warn(message: string, fields?: Record<string, unknown>): void {
    this.#out.write(this.json ? this.#line('warning', message, fields) : `${this.#paint('33', 'Warning:')} ${printableMessage(message)}\n`);
  }

  error(message: string): void {
    this.#out.write(this.json ? this.#line('error', message) : `${this.#paint('31', 'ERROR:')} ${printableMessage(message)}\n`);
  }

  debug(message: string): void {
    if (this.debugEnabled) this.#out.write(this.json ? this.#line('debug', message) : `${this.#paint('2', 'DEBUG')} ${printableMessage(message)}\n`);
  }

  #line(level: string, message: string, fields?: Record<string, unknown>): string {
    return `${terminalSafeJson(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }))}\n`;
  }

  #paint(code: string, text: string): string {
    return this.color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }
}
