// Ends the test output with one line that says how many tests passed and failed, after the ten
// slowest files and how long each took: where the suite's wall time goes, in every CI log.
import type { TestEvent } from 'node:test/reporters';

const SLOWEST = 10;

export default async function* summary(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const files = new Map<string, number>();
  for await (const event of source) {
    if (event.type === 'test:summary' && event.data.file !== undefined) files.set(event.data.file, event.data.duration_ms);
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (event.data.details.type === 'suite') continue;
    if (event.type === 'test:fail') failed++;
    else if (event.data.skip !== undefined || event.data.todo !== undefined) skipped++;
    else passed++;
  }
  const slowest = [...files].sort((a, b) => b[1] - a[1]).slice(0, SLOWEST);
  if (slowest.length > 1) {
    yield `\nslowest files:\n${slowest.map(([file, ms]) => `${(ms / 1000).toFixed(1).padStart(7)} s  ${file.slice(file.lastIndexOf('/test/') + 1)}`).join('\n')}\n`;
  }
  yield `\nkport tests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`;
}
