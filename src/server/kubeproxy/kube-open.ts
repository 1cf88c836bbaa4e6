import type { IncomingHttpHeaders } from 'node:http';
import type { PersonCaller } from '../call/caller.ts';
import type { Ending } from './kube-ending.ts';

/**
 * Kubernetes requests (watches, exec and port-forward sessions included) one person may have open
 * through the server at once, over all their connections and clusters. A person's tools keep a
 * watch per resource they show and a session per terminal: tens, not hundreds. 256 is what one of
 * their HTTP/2 connections may carry, and about a quarter of one agent's tunnel (1,000 streams).
 * This bound is per server; the same share is held where the tunnel ends, over every server's
 * requests and peers' (TunnelRegistry), so a person spreading over servers cannot fill it either.
 */
export const MAX_REQUESTS_PER_PERSON = 256;

/** One request being served, as admitted: enough to decide again whether the person may still hold it. */
export interface OpenRequest {
  caller: PersonCaller;
  cluster: string;
  /** The path inside the cluster, query included (a watch's `?watch=1`). */
  path: string;
  user: string;
  groups: string[];
  headers: IncomingHttpHeaders;
  /** Ends it, telling the person why where their protocol can (kube-ending.ts); the reason is also a session's end. */
  end(ending: Ending): void;
}

/** The Kubernetes requests open through the server, by person: counted against the bound, and checked again when roles change. */
export class OpenKubeRequests {
  readonly #byPerson = new Map<string, Set<OpenRequest>>();

  /** Counts a request in; the returned function counts it out (once). Undefined when the person is at the bound. */
  enter(request: OpenRequest): (() => void) | undefined {
    const person = request.caller.person;
    let open = this.#byPerson.get(person);
    if ((open?.size ?? 0) >= MAX_REQUESTS_PER_PERSON) return undefined;
    if (!open) this.#byPerson.set(person, (open = new Set()));
    open.add(request);
    const set = open;
    return () => {
      set.delete(request);
      if (set.size === 0 && this.#byPerson.get(person) === set) this.#byPerson.delete(person);
    };
  }

  /** The open requests of `person`, or of everyone. */
  of(person?: string): OpenRequest[] {
    if (person !== undefined) return [...(this.#byPerson.get(person) ?? [])];
    return [...this.#byPerson.values()].flatMap((set) => [...set]);
  }
}

/** The bound's refusal, as the Status a person's tool shows. */
export function tooManyMessage(person: string): string {
  return `${person} already has ${MAX_REQUESTS_PER_PERSON} Kubernetes requests open through this server (watches and exec sessions count), the most one person may: close some (or wait for them to end) and try again`;
}
