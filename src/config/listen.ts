// Where the server listens, from the config: `server start` binds it, and `tokens add` and
// `users add` print it for agents and people to dial (src/tokens/server-info.ts).

export const DEFAULT_LISTEN_ADDR = '127.0.0.1:3080';

/** Where the server listens: proxy_service.listen_addr (Teleport's web_listen_addr), or loopback only. */
export function listenSetting(proxy: { listen_addr?: string; web_listen_addr?: string } | undefined): { key: string; value: string } {
  if (proxy?.listen_addr) return { key: 'proxy_service.listen_addr', value: proxy.listen_addr };
  if (proxy?.web_listen_addr) return { key: 'proxy_service.web_listen_addr', value: proxy.web_listen_addr };
  return { key: 'proxy_service.listen_addr', value: DEFAULT_LISTEN_ADDR };
}

/**
 * The address agents and people are told to dial: the first proxy_service.public_addr (a load
 * balancer's, when there is one in front), else where the server listens.
 */
export function dialSetting(proxy: { listen_addr?: string; web_listen_addr?: string; public_addr?: string | string[] } | undefined): {
  key: string;
  value: string;
} {
  const first = [proxy?.public_addr ?? []].flat()[0];
  return first ? { key: 'proxy_service.public_addr', value: first } : listenSetting(proxy);
}
