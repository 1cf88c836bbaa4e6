// Shared wording for problems found in YAML people wrote.

/** `a.b[0].c`, the way config problems name a key. */
export function keyPath(path: PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(top level)';
}

/** The yaml library's first message line, without its repeated position. */
export function yamlErrorText(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
