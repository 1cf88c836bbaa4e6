// The recordings directory as a sink (<data_dir>/server/recordings, 0700, files 0600): one server's
// own disk, counted against its recording budget (budget.ts). A file is written as the session runs.
import { chmodSync, constants, mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { listRecordings } from '../../../recordings/catalog.ts';
import { SinkError, type RecordingSink, type SinkWriter } from '../../../recordings/sink.ts';
import { openRecording } from '../../../recordings/store.ts';
import { RecordingBudget, type BudgetLimits } from './budget.ts';

export class LocalSink implements RecordingSink {
  readonly dir: string;
  readonly budget: RecordingBudget;

  constructor(dir: string, limits?: BudgetLimits) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    this.dir = dir;
    this.budget = new RecordingBudget(dir, limits);
  }

  get where(): string {
    return this.dir;
  }

  unavailable(): string | undefined {
    return undefined;
  }

  async ready(): Promise<string | undefined> {
    return undefined;
  }

  create(id: string): SinkWriter {
    return new FileWriter(join(this.dir, `${id}.cast`));
  }

  open(id: string) {
    return openRecording(this.dir, id);
  }

  list(limit: number) {
    return listRecordings(this.dir, limit);
  }

  async close(): Promise<void> {}
}

class FileWriter implements SinkWriter {
  readonly #path: string;
  #file?: Promise<FileHandle>;

  constructor(path: string) {
    this.#path = path;
  }

  async write(text: string): Promise<void> {
    // Never follows a link, never overwrites: a session id names one new file.
    this.#file ??= open(this.#path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch((err: Error) => {
      throw new SinkError(`the file could not be created (${err.message})`, { cause: err });
    });
    const file = await this.#file;
    await file.write(text).catch((err: Error) => {
      throw new SinkError(`a write failed (${err.message})`, { cause: err });
    });
  }

  async close(): Promise<void> {
    const file = await this.#file?.catch(() => undefined);
    await file?.close().catch(() => undefined);
  }

  abort(): Promise<void> {
    // What was written stays: a file is readable as it grows.
    return this.close();
  }
}
