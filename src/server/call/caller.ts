import type { ApiError } from '../../api/errors.ts';

// Who is calling and on which connection: the words every part of the server shares. The listener
// (api/connections.ts) makes them; auth decides by them, the Kubernetes proxy ends what they hold.

/** Who is calling, from a verified host certificate. */
export interface HostCaller {
  hostId: string;
  roles: string[];
  group: string;
}

export interface VerifiedCaller extends HostCaller {
  keyHash: string;
  /** When the host certificate expires (ms since the epoch): calls stop then and the connection closes. */
  notAfter: number;
}

/** A person, from a user certificate: checked again on every call (expiry, removal, lock, current roles). */
export interface PersonCaller {
  person: string;
  /** The roles at login; every call is decided by the user's current roles in the store. */
  roles: string[];
  /** The user record it was issued for (PersonUser's uid). */
  uid?: string;
  keyHash: string;
  notAfter: number;
  notBefore: number;
}

export type Caller = VerifiedCaller | PersonCaller;

/** One TLS connection: who is behind it (checked once, at the handshake) and how to end it. */
export interface Connection {
  readonly caller: Caller | ApiError;
  /** Why the server ended it (a certificate's expiry, its person locked or removed), once it did: what a session's end says. */
  readonly closedBecause?: string;
  /** Ends the connection: a GOAWAY (or the end of the HTTP/1.1 response), then the socket a second later. */
  drop(reason?: string): void;
  /**
   * Calls `fn` with the reason when the server ends the connection, before it does, so what is open
   * on it can say why (kubeproxy/kube-ending.ts); returns what takes `fn` off again.
   */
  onDrop(fn: (reason: string | undefined) => void): () => void;
}

/**
 * Finding the connection a request or a person's session is on: what the listener's ConnectionGuard
 * (api/connections.ts) answers, and all auth and the Kubernetes proxy need of it.
 */
export interface ConnectionLookup {
  /** The connection an HTTP/2 stream's session came on. */
  ofSession(session: object | undefined): Connection | undefined;
  /** The connection an HTTP/1.1 socket (an upgrade's) came on. */
  ofSocket(socket: object): Connection | undefined;
  /** The open connections of `person`'s certificates (every login of theirs), or of every person. */
  ofPeople(person?: string): Connection[];
}
