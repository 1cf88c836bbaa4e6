/**
 * Characters that change a terminal instead of showing on it: C0 and C1 controls (ESC, BEL, CR,
 * and the 8-bit CSI), format characters (U+202E and the other bidi overrides, zero-width ones),
 * lone surrogates, and the line and paragraph separators. Free text an agent sends (a hostname, an
 * error) reaches an admin's terminal in `kport get` and `agents ls`, so the server refuses it.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** Why `text` may not be stored as `what`, or undefined: at most `max` characters, all printable. */
export function freeTextProblem(what: string, text: string, max: number): string | undefined {
  if (text.length > max) return `${what} is ${text.length} characters long; at most ${max}`;
  const bad = UNPRINTABLE.exec(text);
  if (bad) return `${what} holds the unprintable character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return undefined;
}

/** `text` with what a terminal would act on replaced by U+FFFD and cut to `max` characters: for text an agent passes on from elsewhere (an AWS error). */
export function printableText(text: string, max: number): string {
  const clean = text.replace(new RegExp(UNPRINTABLE.source, 'gu'), (c) => (c === '\n' || c === '\t' ? ' ' : '\uFFFD'));
  if (clean.length <= max) return clean;
  // Not between the halves of a surrogate pair: a lone half is itself unprintable.
  const cut = /[\uD800-\uDBFF]/.test(clean[max - 2] ?? '') ? max - 2 : max - 1;
  return `${clean.slice(0, cut)}…`;
}
