// core/trusted-path.ts on real directories: the walk OpenSSH's secure_filename makes, the real path
// it returns, and the directories it makes. Whose each path is needs another user to see refused:
// test/integration/trusted-path.test.ts does that with real processes.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { UserError } from '../../src/core/errors.ts';
import { trustedPath } from '../../src/core/trusted-path.ts';
import { tempHome } from '../helpers/run.ts';

const rule = { what: 'the data dir' };

describe('trustedPath', () => {
  test("returns the real path, through the user's own links (relative ones too), with a tail that does not exist yet appended", () => {
    const home = realpathSync(tempHome());
    mkdirSync(join(home, 'real', 'inner'), { recursive: true });
    symlinkSync('real', join(home, 'link'));
    symlinkSync(join(home, 'link', 'inner'), join(home, 'second'));
    assert.equal(trustedPath(join(home, 'second', 'data', 'more'), rule), join(home, 'real', 'inner', 'data', 'more'));
    assert.equal(trustedPath(join(home, 'link', '..', 'link'), rule), join(home, 'real'));
  });

  test('with create, makes each missing directory 0700 at the real path', () => {
    const home = realpathSync(tempHome());
    mkdirSync(join(home, 'real'));
    symlinkSync('real', join(home, 'link'));
    const made = trustedPath(join(home, 'link', 'a', 'b'), rule, { create: true });
    assert.equal(made, join(home, 'real', 'a', 'b'));
    for (const dir of [join(home, 'real', 'a'), made]) assert.equal(statSync(dir).mode & 0o777, 0o700);
  });

  test("a directory on the way that others can write is refused unless sticky; the last one is the caller's to judge, unless kport writes into it", () => {
    const home = realpathSync(tempHome());
    const open = join(home, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.throws(
      () => trustedPath(join(open, 'data'), rule),
      (err: UserError) =>
        err.exitCode === 1 &&
        err.message.startsWith(`The directory ${open} on the way to the data dir ${join(open, 'data')} is writable by other users (mode 0777)`),
    );
    assert.throws(
      () => trustedPath(join(open, 'data'), { what: 'your kport home', exitCode: 4 }, { create: true }),
      (err: UserError) => err.exitCode === 4,
    );
    assert.equal(trustedPath(open, rule), open);
    assert.throws(
      () => trustedPath(open, { what: 'the directory' }, { writeInto: true }),
      (err: UserError) => err.message.startsWith(`The directory ${open} is writable by other users (mode 0777)`),
    );
    chmodSync(open, 0o1777);
    assert.equal(trustedPath(join(open, 'data'), rule), join(open, 'data'));
    assert.equal(trustedPath(open, { what: 'the directory' }, { writeInto: true }), open);
  });

  test('a loop of links is refused, not followed for ever', () => {
    const home = realpathSync(tempHome());
    symlinkSync(join(home, 'b'), join(home, 'a'));
    symlinkSync(join(home, 'a'), join(home, 'b'));
    assert.throws(() => trustedPath(join(home, 'a'), rule), /leads through more than 40 symbolic links/);
  });
});
