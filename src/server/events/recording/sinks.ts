// Which sink a server records to: auth_service.audit_sessions_uri's bucket when it is set, else the
// server's own recordings directory with its budget (README "Session recordings").
import { parseSessionsUri } from '../../../config/sessions-uri.ts';
import type { RecordingSink } from '../../../recordings/sink.ts';
import { recordingsDir } from '../../../recordings/store.ts';
import { budgetLimits } from './budget.ts';
import { LocalSink } from './local-sink.ts';

export async function openSink(
  auth: { audit_sessions_uri?: string; recording_budget?: { total?: number; per_user?: number } },
  dataDir: string,
  log: (line: string) => void,
): Promise<RecordingSink> {
  if (auth.audit_sessions_uri === undefined) return new LocalSink(recordingsDir(dataDir), budgetLimits(auth.recording_budget));
  const { S3Sink } = await import('../../../recordings/s3-sink.ts');
  return S3Sink.open(parseSessionsUri(auth.audit_sessions_uri), { log });
}
