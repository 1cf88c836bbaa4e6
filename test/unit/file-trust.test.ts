// The rules of core/file-trust.ts (whose files kport trusts) and core/atomic-write.ts (how it
// replaces them), on real files; the running user is set by stubbing process.geteuid, so the root
// and non-root cases are both seen whoever runs the tests.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { writeFileAtomic, writeTempBeside } from '../../src/core/atomic-write.ts';
import type { UserError } from '../../src/core/errors.ts';
import { judge } from '../../src/core/file-trust.ts';
import { tempHome } from '../helpers/run.ts';

const realGeteuid = process.geteuid;
const runAs = (uid: number) => (process.geteuid = () => uid);
afterEach(() => (process.geteuid = realGeteuid));

const stats = (uid: number, mode: number, dir = false) => ({ uid, mode, isDirectory: () => dir }) as unknown as Stats;
const rule = { what: 'the data dir', harm: 'replace the store in it' };

describe('judge: whose a path is and who can write or read it', () => {
  test("the running user's and root's are trusted; another user's is refused naming the path and both uids", () => {
    runAs(1000);
    judge('/d', stats(1000, 0o40700, true), rule);
    judge('/d', stats(0, 0o40755, true), rule);
    assert.throws(
      () => judge('/d', stats(1001, 0o40700, true), rule),
      (err: UserError) =>
        /^The data dir \/d belongs to uid 1001\b.*, not to you \(uid 1000\b.*\) or root: another local user may have put it there, so kport will not use it; check it, then remove it or have root chown it to you\.$/.test(
          err.message,
        ) && err.exitCode === 1,
    );
    runAs(0);
    assert.throws(() => judge('/d', stats(65534, 0o40700, true), rule), /belongs to uid 65534/, "root does not trust another user's files either");
  });

  test('writable by group or others is refused (chmod 700 for a directory, 600 for a file); readable only for a secret', () => {
    runAs(1000);
    for (const mode of [0o40770, 0o40707, 0o40720]) {
      assert.throws(
        () => judge('/d', stats(1000, mode, true), rule),
        (err: UserError) => err.message === '/d is writable by other users, who could replace the store in it: run chmod 700 /d, then run the command again.',
      );
    }
    assert.throws(() => judge('/f', stats(1000, 0o100620), rule), /run chmod 600 \/f/);
    judge('/f', stats(1000, 0o100644), rule);
    const secret = { ...rule, secret: { afterRead: ' (and rotate it)' }, exitCode: 4 };
    assert.throws(
      () => judge('/f', stats(1000, 0o100640), secret),
      (err: UserError) =>
        err.message === '/f can be read by other users (mode 0640), so kport will not use it: run chmod 600 /f (and rotate it).' && err.exitCode === 4,
    );
    judge('/f', stats(1000, 0o100600), secret);
  });
});

describe('writeFileAtomic: one way to replace a file', () => {
  test('the temporary file has an unpredictable name beside the target, and none is left after the rename', () => {
    const dir = tempHome();
    const target = join(dir, 'config');
    const names = new Set([writeTempBeside(target, 'a', 0o600), writeTempBeside(target, 'b', 0o600)]);
    assert.equal(names.size, 2);
    for (const name of names) assert.match(name, new RegExp(`^${dir}/config\\.${process.pid}\\.[0-9a-f]{16}\\.tmp$`));
    assert.equal(writeFileAtomic(target, 'new\n', { mode: 0o600 }), target);
    assert.equal(readFileSync(target, 'utf8'), 'new\n');
    assert.equal(statSync(target).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(dir).filter((n) => !names.has(join(dir, n))),
      ['config'],
    );
  });

  test("a symlink target: refused by default; followed (each link the user's) with follow-own, the link kept", () => {
    const dir = tempHome();
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'file'), 'old');
    symlinkSync('real/file', join(dir, 'hop'));
    symlinkSync('hop', join(dir, 'link'));
    assert.throws(
      () => writeFileAtomic(join(dir, 'link'), 'x'),
      /is a symbolic link, and kport writes its own files only in place of a regular file: remove the link/,
    );
    assert.equal(writeFileAtomic(join(dir, 'link'), 'new', { symlink: 'follow-own' }), join(dir, 'real', 'file'));
    assert.equal(readFileSync(join(dir, 'real', 'file'), 'utf8'), 'new');
    assert.ok(lstatSync(join(dir, 'link')).isSymbolicLink() && lstatSync(join(dir, 'hop')).isSymbolicLink());
    assert.deepEqual(readdirSync(join(dir, 'real')), ['file']);
    // A link to nothing yet: the file is made where it points, as kubectl would.
    symlinkSync('real/new', join(dir, 'dangling'));
    writeFileAtomic(join(dir, 'dangling'), 'made', { symlink: 'follow-own' });
    assert.equal(readFileSync(join(dir, 'real', 'new'), 'utf8'), 'made');
  });

  test("a target or link of another user is refused; root's are written", () => {
    const dir = tempHome();
    const target = join(dir, 'file');
    writeFileSync(target, 'old');
    const owner = statSync(target).uid;
    runAs(owner + 1);
    if (owner === 0) writeFileAtomic(target, "root's file, another runner");
    else assert.throws(() => writeFileAtomic(target, 'x'), /the file .* belongs to uid \d+/i);
    runAs(owner);
    writeFileAtomic(target, 'mine');
    assert.equal(readFileSync(target, 'utf8'), 'mine');
  });
});
