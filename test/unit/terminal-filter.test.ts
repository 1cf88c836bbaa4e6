// kport play's terminal filter: what a pod's output may do to the auditor's terminal. Dangerous
// forms are dropped whole (also split across events at every byte), drawing forms kept byte for byte.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_STRING, TerminalFilter } from '../../src/commands/play/terminal-filter.ts';

const filter = (...events: string[]) => {
  const f = new TerminalFilter();
  return events.map((e) => f.write(e)).join('');
};

/** Every way of splitting `text` into two and three events. */
function splits(text: string): string[][] {
  const out: string[][] = [];
  for (let i = 0; i <= text.length; i++) {
    out.push([text.slice(0, i), text.slice(i)]);
    for (let j = i; j <= text.length; j += 3) out.push([text.slice(0, i), text.slice(i, j), text.slice(j)]);
  }
  return out;
}

const DROPPED: Array<[string, string]> = [
  ['OSC 52 clipboard write, BEL', '\x1b]52;c;ZWNobyBwd25lZA==\x07'],
  ['OSC 52 clipboard write, ST', '\x1b]52;c;ZWNobyBwd25lZA==\x1b\\'],
  ['OSC 52 clipboard read (the terminal answers)', '\x1b]52;c;?\x07'],
  ['OSC 0 window title', '\x1b]0;you have been pwned\x07'],
  ['OSC 2 window title, C1 ST', '\x1b]2;title\u009c'],
  ['OSC 8 hyperlink open', '\x1b]8;;https://evil.example/\x1b\\'],
  ['OSC 4 colour query', '\x1b]4;1;?\x07'],
  ['OSC 1337 iTerm2 file', '\x1b]1337;File=name=eA==;inline=1:AAAA\x07'],
  ['C1 OSC', '\u009d0;title\u0007'],
  ['DCS DECRQSS', '\x1bP$qm\x1b\\'],
  ['DCS XTGETTCAP', '\x1bP+q544e\x1b\\'],
  ['C1 DCS', '\u0090$qm\u009c'],
  ['SOS', '\x1bXsos payload\x1b\\'],
  ['PM', '\x1b^pm payload\x1b\\'],
  ['APC (kitty graphics)', '\x1b_Gf=100;AAAA\x1b\\'],
  ['C1 SOS, PM, APC', '\u0098a\u009c\u009eb\u009c\u009fc\u009c'],
  ['screen/tmux window title', '\x1bkwindow name\x1b\\'],
  ['DSR cursor position report', '\x1b[6n'],
  ['DSR status', '\x1b[5n'],
  ['DEC DSR', '\x1b[?6n'],
  ['DA1', '\x1b[c'],
  ['DA1 with 0', '\x1b[0c'],
  ['DA2', '\x1b[>c'],
  ['DA3', '\x1b[=c'],
  ['CSI 21t title report', '\x1b[21t'],
  ['CSI 14t size report', '\x1b[14t'],
  ['CSI 8t resize', '\x1b[8;100;200t'],
  ['CSI 22t title push', '\x1b[22;0t'],
  ['DECREQTPARM', '\x1b[x'],
  ['DECREQTPARM 1', '\x1b[1x'],
  ['DECRQM ANSI', '\x1b[4$p'],
  ['DECRQM private', '\x1b[?2026$p'],
  ['DECRQPSR', '\x1b[1$w'],
  ['DECRQTSR', '\x1b[1$u'],
  ['DECRQCRA checksum', '\x1b[1;1;1;1;24;80*y'],
  ['XTVERSION', '\x1b[>0q'],
  ['XTSMGRAPHICS query', '\x1b[?1;1;0S'],
  ['kitty keyboard query', '\x1b[?u'],
  ['media copy (printer)', '\x1b[5i'],
  ['C1 CSI (8-bit DSR)', '\u009b6n'],
  ['C1 CSI even when it would draw', '\u009b31m'],
  ['DECID', '\x1bZ'],
  ['leave UTF-8 (ESC %@)', '\x1b%@'],
  ['VT52 mode', '\x1b[?2l'],
  ['VT52 mode among other modes', '\x1b[?25;2l'],
  ['ENQ answerback', '\x05'],
  ['lone C1 controls', '\u0080\u0085\u0088\u008d\u009a\u009c'],
  ['a CSI with a parameter after an intermediate', '\x1b[1$2p'],
];

const KEPT: Array<[string, string]> = [
  ['SGR reset', '\x1b[m'],
  ['SGR bold red', '\x1b[1;31m'],
  ['SGR 256 colours', '\x1b[38;5;208m'],
  ['SGR truecolour with colons', '\x1b[38:2::255:0:0m'],
  ['SGR truecolour fg and bg', '\x1b[38;2;255;255;255;48;2;10;20;30;1;3;4m'],
  ['cursor up, down, forward, back', '\x1b[A\x1b[2B\x1b[10C\x1b[D'],
  ['cursor position', '\x1b[12;40H'],
  ['HVP', '\x1b[1;1f'],
  ['column and row absolute', '\x1b[5G\x1b[7d'],
  ['erase display and line', '\x1b[2J\x1b[K\x1b[1K\x1b[3J'],
  ['selective erase', '\x1b[?2J\x1b[?K'],
  ['insert and delete lines and characters', '\x1b[3L\x1b[2M\x1b[4P\x1b[5@\x1b[6X'],
  ['scroll region and scrolling', '\x1b[1;24r\x1b[2S\x1b[3T'],
  ['alternate screen', '\x1b[?1049h\x1b[?1049l'],
  ['cursor visibility', '\x1b[?25l\x1b[?25h'],
  ['several private modes at once', '\x1b[?1;1000;1006;2004h'],
  ['insert mode', '\x1b[4h\x1b[4l'],
  ['save and restore cursor', '\x1b7\x1b8\x1b[s\x1b[u'],
  ['keypad modes', '\x1b=\x1b>'],
  ['index, reverse index, next line', '\x1bD\x1bM\x1bE'],
  ['charset selection', '\x1b(0lqk\x1b(B\x1b)0\x0e\x0f'],
  ['DEC screen alignment and line sizes', '\x1b#8\x1b#3\x1b#6'],
  ['full reset', '\x1bc'],
  ['soft reset', '\x1b[!p'],
  ['cursor style', '\x1b[2 q'],
  ['modifyOtherKeys (vim)', '\x1b[>4;2m'],
  ['tabs', '\x1bH\x1b[g\x1b[3g\x1b[2I\x1b[Z'],
  ['repeat', 'x\x1b[5b'],
  ['C0 controls', 'a\r\n\tb\x08c\x07'],
  ['text in every script', 'héllo 東京 🙂 \u200b'],
  ['DEL', 'a\x7fb'],
];

describe('TerminalFilter', () => {
  for (const [name, seq] of DROPPED) {
    test(`drops ${name}, whole and split at every byte`, () => {
      for (const events of [[seq], ...splits(seq)]) {
        assert.equal(filter('a', ...events, 'b'), 'ab', JSON.stringify(events));
      }
    });
  }

  for (const [name, seq] of KEPT) {
    test(`keeps ${name} byte for byte, whole and split at every byte`, () => {
      for (const events of [[seq], ...splits(seq)]) assert.equal(filter(...events), seq, JSON.stringify(events));
    });
  }

  test('a real screen: vim-like output with a title, a DSR and a clipboard write inside keeps every drawing byte in order', () => {
    const draw = '\x1b[?1049h\x1b[1;24r\x1b[H\x1b[2J\x1b[?25l\x1b[1;1H\x1b[34m~\x1b[m\r\n\x1b[7mfile.txt\x1b[27m\x1b[?25h';
    const hostile =
      '\x1b[?1049h\x1b[22;0;0t\x1b[1;24r\x1b]0;vim\x07\x1b[H\x1b[2J\x1b[6n\x1b[?25l\x1b[1;1H\x1b[34m~\x1b[m\x1b]52;c;cm0gLXJm\x07\r\n\x1b]8;;http://x\x1b\\\x1b[7mfile.txt\x1b[27m\x1b]8;;\x1b\\\x1b[?25h';
    assert.equal(filter(hostile), draw);
    for (let i = 0; i < hostile.length; i += 7) assert.equal(filter(hostile.slice(0, i), hostile.slice(i)), draw);
  });

  test('an OSC link keeps its text, and an OSC ended by a new escape lets that escape through', () => {
    assert.equal(filter('\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07'), 'click');
    assert.equal(filter('\x1b]0;title\x1b[31mred'), '\x1b[31mred');
    assert.equal(filter('\x1b]0;title\x18after'), 'after');
  });

  test(`an unterminated string is dropped for ${MAX_STRING} characters, then the session shows again`, () => {
    const f = new TerminalFilter();
    assert.equal(f.write('before\x1b]52;c;'), 'before');
    let shown = '';
    for (let i = 0; i < MAX_STRING / 64 - 1; i++) shown += f.write('A'.repeat(64));
    assert.equal(shown, '', 'within the cap');
    // '52;c;' and 4032 A: 4037 of the 4096; 59 more, and the rest is text again.
    assert.equal(f.write('A'.repeat(64)), 'AAAAA');
    assert.equal(f.write('\r\n\x1b[1mafter\x1b[6n'), '\r\n\x1b[1mafter');
    assert.equal(filter('\x1bP', 'x'.repeat(MAX_STRING + 3)), 'xxx');
  });

  test('a CSI too long to be a drawing one is dropped to its final byte', () => {
    assert.equal(filter(`a\x1b[${'1;'.repeat(200)}mb`), 'ab');
  });

  test("a sequence left open at an event's end is not written until it is whole", () => {
    const f = new TerminalFilter();
    assert.equal(f.write('x\x1b'), 'x');
    assert.equal(f.write('['), '');
    assert.equal(f.write('3'), '');
    assert.equal(f.write('1m'), '\x1b[31m');
  });
});
