import type { Backend, Item } from '../../backend/backend.ts';
import { kindPrefix, labelsProblems } from '../../resources/resource.ts';
import { decodeResource } from '../../resources/store.ts';
import { TOKEN, type Token } from '../../resources/token.ts';
import { MAX_CHOSEN_TOKENS, MAX_TOKEN_TTL_MS, MAX_TOKEN_USES, TOKEN_NAME, TOKEN_ROLES, VERIFIER } from '../../tokens/tokens.ts';

/**
 * How far a client's clock (which sets `expires`) and the server's may disagree, network time
 * included: `expires` must be within this of now + the write's TTL.
 */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Why a token record a person writes over /v1/backend is not one `kport tokens add` makes, or
 * undefined. The CLI makes tokens at the client and sends only the salted verifier, so the server
 * checks the record itself: strangers' joins are checked against it (a cheap verifier, a record
 * that never expires or grants roles no agent has, all widen what a join may try), so it must be
 * exactly what addToken writes.
 */
export function tokenRecordProblem(value: Record<string, unknown>, ttlMs: number | undefined, now: Date): string | undefined {
  const { kind: _k, version, metadata, spec, ...rest } = value;
  if (Object.keys(rest).length > 0) return `has fields a token does not: ${Object.keys(rest).join(', ')}`;
  if (version !== 'v2') return 'is not version v2';
  if (!isObject(metadata) || !isObject(spec)) return 'needs metadata and spec';
  const { name, labels, expires, ...metaRest } = metadata;
  if (Object.keys(metaRest).length > 0) return `has metadata a token does not: ${Object.keys(metaRest).join(', ')}`;
  if (typeof name !== 'string' || !TOKEN_NAME.test(name)) return 'is named other than tok-<16 hex digits>, the name kport tokens add gives';
  if (labels !== undefined) {
    if (!isObject(labels) || !Object.values(labels).every((v) => typeof v === 'string')) return 'has labels that are not key: text';
    const problems = labelsProblems(labels as Record<string, string>);
    if (problems.length > 0) return `has labels that are not valid: ${problems.join('; ')}`;
  }
  const { roles, verifier, chosen, uses_remaining: uses, ...specRest } = spec;
  if (Object.keys(specRest).length > 0) return `has spec fields kport tokens add does not write: ${Object.keys(specRest).join(', ')}`;
  if (
    !Array.isArray(roles) ||
    roles.length === 0 ||
    !roles.every((r) => (TOKEN_ROLES as readonly unknown[]).includes(r)) ||
    new Set(roles).size !== roles.length
  ) {
    return `grants roles ${JSON.stringify(roles)}: a token grants one or both of ${TOKEN_ROLES.join(', ')}`;
  }
  if (typeof verifier !== 'string' || !VERIFIER.test(verifier))
    return 'has a verifier other than scrypt$16384$8$1$<16-byte salt>$<32-byte hash>, the one kport tokens add makes';
  if (chosen !== undefined && chosen !== true) return 'has a chosen flag that is not true';
  if (uses !== undefined && !(Number.isInteger(uses) && (uses as number) >= 1 && (uses as number) <= MAX_TOKEN_USES))
    return `has uses_remaining other than a whole number from 1 to ${MAX_TOKEN_USES}`;
  const days = MAX_TOKEN_TTL_MS / 86_400_000;
  if (typeof expires !== 'string' || Number.isNaN(Date.parse(expires))) return `has no expiry: a token lives at most ${days} days`;
  if (ttlMs === undefined || !Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) return `is written with a TTL other than up to ${days} days`;
  if (Math.abs(Date.parse(expires) - (now.getTime() + ttlMs)) > CLOCK_SKEW_MS)
    return `expires at ${expires}, not when its TTL of ${ttlMs} ms ends (is this machine's clock off?)`;
  return undefined;
}

/**
 * Why a person's new token may not be stored now, or undefined; `store` stores it. A chosen-value
 * token is checked at every stranger's join, so at most MAX_CHOSEN_TOKENS may live: counted here,
 * at write time, with this server's chosen-token writes one at a time so two cannot both see room.
 */
export async function storeToken(
  backend: Backend,
  value: Record<string, unknown>,
  ttlMs: number | undefined,
  now: Date,
  store: () => Promise<Item | undefined>,
): Promise<{ refused: string } | { item: Item | undefined }> {
  const problem = tokenRecordProblem(value, ttlMs, now);
  if (problem) return { refused: `wrote a token that ${problem}: make tokens with kport tokens add` };
  if ((value.spec as { chosen?: boolean }).chosen !== true) return { item: await store() };
  const turn = chosenWrites.then(async () => {
    const live = (await backend.list(kindPrefix(TOKEN))).filter((item) => isChosen(item, now)).length;
    if (live >= MAX_CHOSEN_TOKENS)
      return {
        refused: `wrote a token with a chosen value while ${live} live, the most kport keeps (each is checked at every join): remove one with kport tokens rm NAME, or leave out --value`,
      };
    return { item: await store() };
  });
  chosenWrites = turn.catch(() => undefined);
  return turn;
}

let chosenWrites: Promise<unknown> = Promise.resolve();

/** A live token made with a chosen value; a record that does not read as a token counts as none, as one that was not JSON always did. */
function isChosen(item: Item, now: Date): boolean {
  try {
    const token = decodeResource<Token>(item);
    const expires = token.metadata.expires;
    return token.spec.chosen === true && !(expires && Date.parse(expires) <= now.getTime());
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
