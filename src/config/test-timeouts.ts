import { z } from 'zod';
import { UsageError } from '../core/errors.ts';

const ms = z.number().int().positive();

/**
 * KPORT_TEST_TIMEOUTS, a JSON object of milliseconds such as `{"tunnelIdleMs":3000}`, shortens the
 * waits the server and its agents keep (a silent tunnel's 45 s, an idle stranger's 20 s, a PING
 * every 15 s, the 30 s `discover run --once` gives an unreachable server), so that a test shows what a limit does in seconds instead of sleeping past the real
 * one. For tests only: read here (config/, as the house rules want) and handed to the services as
 * options; unset, every default holds.
 */
const testTimeoutsSchema = z
  .strictObject({
    handshakeMs: ms,
    silentMs: ms,
    joinBodyMs: ms,
    unauthenticatedIdleMs: ms,
    tunnelIdleMs: ms,
    tunnelPingMs: ms,
    onceUnreachableMs: ms,
  })
  .partial();

export type TestTimeouts = z.infer<typeof testTimeoutsSchema>;

export function testTimeouts(env: NodeJS.ProcessEnv): TestTimeouts {
  const raw = env.KPORT_TEST_TIMEOUTS;
  if (!raw) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new UsageError('KPORT_TEST_TIMEOUTS is not JSON: set it to an object of milliseconds, such as {"tunnelIdleMs":3000}, or unset it.');
  }
  const parsed = testTimeoutsSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `KPORT_TEST_TIMEOUTS${issue?.path.length ? `.${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'}; set it to an object of milliseconds, such as {"tunnelIdleMs":3000}, or unset it.`,
    );
  }
  return parsed.data;
}
