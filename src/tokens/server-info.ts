import { z } from 'zod';
import type { Backend } from '../backend/backend.ts';
import { dialSetting } from '../config/listen.ts';
import type { LoadedConfig } from '../config/load.ts';
import { caKey } from '../pki/authority-key.ts';
import { spkiPin } from '../pki/pin.ts';

/** The stored TLS authority, of which only the public certificate is read here. */
const storedCert = z.looseObject({ cert: z.string() });

/**
 * The server this store belongs to, once one has started: its CA pin and the address agents and
 * people dial, for the lines `tokens add` and `users add` print on the server's host.
 */
export async function serverInfo(backend: Backend, config: Pick<LoadedConfig, 'proxy_service'>): Promise<{ pin: string; address: string } | undefined> {
  const item = await backend.get(caKey('server_tls'));
  if (!item) return undefined;
  const proxy = config.proxy_service;
  const address = dialSetting(proxy).value;
  return { pin: spkiPin(storedCert.parse(JSON.parse(item.value)).cert), address: address.replace(/^0\.0\.0\.0:/, '127.0.0.1:') };
}
