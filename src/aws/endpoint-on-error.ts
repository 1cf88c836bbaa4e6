/**
 * Remembers, on a failed call's error, which endpoint answered: "AWS answered HTTP 500 (not an AWS
 * error document) from http://127.0.0.1:4566/" tells a person which proxy or emulator to look at.
 * A finalizeRequest middleware sees the request as it is sent, after endpoint resolution.
 */
export function nameEndpointOnError<C extends { middlewareStack: { add: (...args: never[]) => unknown } }>(client: C): C {
  const add = client.middlewareStack.add as unknown as (mw: unknown, opts: unknown) => void;
  add(
    (next: (args: unknown) => Promise<unknown>) => async (args: { request?: { protocol?: string; hostname?: string; port?: number; path?: string } }) => {
      try {
        return await next(args);
      } catch (err) {
        const r = args.request;
        if (r?.hostname && err && typeof err === 'object') {
          (err as { $kportEndpoint?: string }).$kportEndpoint ??= `${r.protocol ?? 'https:'}//${r.hostname}${r.port ? `:${r.port}` : ''}${r.path ?? '/'}`;
        }
        throw err;
      }
    },
    { step: 'finalizeRequest', name: 'kportEndpointOnError', override: true },
  );
  return client;
}
