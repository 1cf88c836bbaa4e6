/**
 * Splits `host:port`, `[v6]:port`, `host` or `:port` as Teleport's addresses are written; undefined
 * when it is none of these. Callers decide which parts they require and what is missing means.
 */
export function splitHostPort(value: string): { host: string; port?: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]\s/]*))(?::(\d{1,5}))?$/.exec(value.trim());
  if (!match) return undefined;
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && port > 65_535) return undefined;
  return { host: match[1] ?? match[2] ?? '', ...(port !== undefined && { port }) };
}
