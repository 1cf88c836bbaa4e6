import type { Backend } from '../backend/backend.ts';
import { AGENT, type Agent } from './agent.ts';
import { resourceKey } from './resource.ts';
import { decodeResource } from './store.ts';

/** What a verified host certificate says, checked against the store: undefined when the agent was removed. */
export async function currentAgent(backend: Backend, hostId: string, keyHash: string): Promise<{ agent: Agent; revision: number } | undefined> {
  const item = await backend.get(resourceKey(AGENT, hostId));
  if (!item) return undefined;
  const agent = decodeResource<Agent>(item);
  if (agent.spec.credential_type !== 'x509' || agent.spec.credential_hash !== keyHash) return undefined;
  return { agent, revision: item.revision };
}
