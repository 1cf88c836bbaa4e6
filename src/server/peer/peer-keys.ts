// Where proxy peering keeps its presence in the store (README "Several servers"). Outside
// /resources/, so no kind lays them out and the gate (server/auth/gate.ts) lets no agent and no
// person read, list, watch or write them: only servers, on their own store connection, do.

/** `/servers/<server id>`: a live server and the address its peer listener is reached at. */
export const SERVERS_PREFIX = '/servers/';
/** `/tunnels/<agent host id>/<server id>`: the agent has at least one tunnel ending on that server. */
export const TUNNELS_PREFIX = '/tunnels/';

export interface ServerRecord {
  server_id: string;
  /** host:port of its peer listener, as other servers dial it. */
  peer_addr: string;
  started: string;
}

export const serverKey = (serverId: string): string => `${SERVERS_PREFIX}${serverId}`;
export const tunnelKey = (hostId: string, serverId: string): string => `${TUNNELS_PREFIX}${hostId}/${serverId}`;

/** The agent and server a tunnel record's name (`<host id>/<server id>`) names; undefined for another shape. */
export function tunnelOf(name: string): { hostId: string; serverId: string } | undefined {
  const [hostId, serverId, ...rest] = name.split('/');
  return hostId && serverId && rest.length === 0 ? { hostId, serverId } : undefined;
}

/** A server record as stored; undefined when it is not one (a hand edit). */
export function parseServerRecord(value: string): ServerRecord | undefined {
  try {
    const record = JSON.parse(value) as Partial<ServerRecord>;
    return typeof record.server_id === 'string' && typeof record.peer_addr === 'string' && typeof record.started === 'string'
      ? (record as ServerRecord)
      : undefined;
  } catch {
    return undefined;
  }
}
