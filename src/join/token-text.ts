/**
 * What a token file holds when it is not the token alone: `kport tokens add` prints, without
 * --format=text, a paragraph for people (the token inside it), and with --format json|yaml a
 * document. Sent as it is, either would only be refused as "token expired or not found", which
 * sends people looking for the wrong cause. undefined for anything that may be a token (one line).
 */
export function notATokenAlone(text: string): string | undefined {
  const trimmed = text.trim();
  if (/^The invite token: /.test(trimmed)) return 'the text `kport tokens add` prints for people, not the token alone';
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      JSON.parse(trimmed);
      return 'the JSON that `kport tokens add --format json` prints, not the token alone';
    } catch {}
  }
  const lines = trimmed.split(/\r?\n/);
  // tokens add's YAML: one `key: value` a line, the token among them (read without a YAML parser: this runs before every join).
  if (lines.length > 1 && lines.some((l) => /^token: \S/.test(l))) return 'the YAML that `kport tokens add --format yaml` prints, not the token alone';
  return lines.length > 1 ? `${lines.length} lines, where a token is one` : undefined;
}
