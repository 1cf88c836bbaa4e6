// What `kport play` lets through from a pod's recorded output to the auditor's terminal. A replay
// must draw what the session's terminal drew (colours, cursor moves, erasing, scroll regions, the
// alternate screen of vim, top and less), but the pod wrote every byte of it: anything that acts
// outside the screen (clipboard, title, hyperlinks, printer) or makes the terminal answer (status
// and attribute reports, which a terminal types back as input) is dropped. The parser follows the
// VT500 state machine (https://vt100.net/emu/dec_ansi_parser) and keeps an allowlist of drawing
// sequences, so a query no one listed is dropped too. It keeps its state between writes: a
// sequence split across events is judged whole.

const ESC = 0x1b;
const BEL = 0x07;
const ENQ = 0x05; // some terminals answer it with an answerback string, typed as input
const CAN = 0x18;
const SUB = 0x1a;
const DEL = 0x7f;
const C1_ST = 0x9c;
const C1_CSI = 0x9b;

/** A string (OSC, DCS, SOS, PM, APC) longer than this is not one: past it the rest shows as text, so one unterminated OSC cannot swallow the rest of a session. */
export const MAX_STRING = 4096;
/** The longest CSI kept; a 24-bit foreground and background with attributes is about 50. */
const MAX_CSI = 256;

/** ESC + final that draw or set drawing state: save/restore cursor, keypad modes, index, reverse index, next line, tab set, single and locking shifts, full reset. */
const ESC_DRAWS = new Set('78=>DEHMNOc69Fno|}~');
/** CSI sequences that draw or set drawing modes, as private marker + intermediates + final. */
const CSI_DRAWS = new Set([
  // Cursor moves, erase, insert/delete, scroll, tabs, SGR, modes, margins, save/restore cursor, LEDs.
  ...'@ABCDEFGHIJKLMPSTXZ`abdefghjklmqrsu',
  // DECSET/DECRST (alternate screen, cursor visibility, mouse...), selective erase, save/restore modes, tab reset.
  '?h',
  '?l',
  '?J',
  '?K',
  '?s',
  '?r',
  '?W',
  // xterm's modifyOtherKeys, which vim sets.
  '>m',
  // Cursor style, shift left/right, soft reset, protection, column insert/delete, rectangle fill/erase/copy/attributes.
  ' q',
  ' @',
  ' A',
  '!p',
  '"q',
  "'}",
  "'~",
  '$x',
  '$z',
  '${',
  '$v',
  '$r',
  '*x',
]);
/** The OSC, DCS, SOS, PM, APC introducers after ESC, and screen/tmux's ESC k window title. */
const STRING_AFTER_ESC = new Set(']PX^_k');
const C1_STRINGS = new Set([0x90, 0x98, 0x9d, 0x9e, 0x9f]);

type State = 'ground' | 'escape' | 'escape-intermediate' | 'csi' | 'csi-ignore' | 'string' | 'string-escape';

const SPECIAL = /[\x05\x1b\x80-\x9f]/g;
const special = (c: number) => c === ESC || c === ENQ || (c >= 0x80 && c <= 0x9f);
const isC0 = (c: number) => c < 0x20;

export class TerminalFilter {
  #state: State = 'ground';
  /** The escape or CSI sequence so far, kept until its final byte says whether it draws. */
  #seq = '';
  /** OSC ends at BEL too; DCS and the others only at ST. */
  #belEnds = false;
  #stringLength = 0;

  /** The part of `text` that draws; whatever sequence it leaves open is finished (or dropped) by the next write. */
  write(text: string): string {
    let out = '';
    let from = 0; // ground text since here is copied as it is
    for (let i = 0; i < text.length; i++) {
      if (this.#state === 'ground') {
        SPECIAL.lastIndex = i;
        if (!SPECIAL.test(text)) break;
        i = SPECIAL.lastIndex - 1;
      }
      out += text.slice(from, i) + this.#feed(text.charCodeAt(i), text[i]!);
      from = i + 1;
    }
    return out + text.slice(from);
  }

  #feed(c: number, ch: string): string {
    switch (this.#state) {
      case 'ground':
        return this.#ground(c, ch);
      case 'escape':
        return this.#escape(c, ch);
      case 'escape-intermediate':
        return this.#escapeIntermediate(c, ch);
      case 'csi':
      case 'csi-ignore':
        return this.#csi(c, ch);
      case 'string':
        return this.#string(c, ch);
      case 'string-escape':
        if (ch === '\\') return this.#to('ground');
        this.#to('escape', '\x1b');
        return this.#escape(c, ch);
    }
  }

  #to(state: State, seq = ''): string {
    this.#state = state;
    this.#seq = seq;
    return '';
  }

  #startString(belEnds: boolean): string {
    this.#belEnds = belEnds;
    this.#stringLength = 0;
    return this.#to('string');
  }

  /** Leaves a sequence for a character that cannot be in it, which then counts as the next thing written. */
  #abandon(c: number, ch: string): string {
    this.#to('ground');
    return special(c) ? this.#ground(c, ch) : ch;
  }

  /** A control within a sequence acts at once (as a terminal does), but ESC, CAN and SUB end the sequence. */
  #control(c: number, ch: string): string {
    if (c === ESC) return this.#to('escape', '\x1b');
    if (c === CAN || c === SUB) return this.#to('ground');
    return c === ENQ ? '' : ch;
  }

  #ground(c: number, ch: string): string {
    if (c === ESC) return this.#to('escape', '\x1b');
    if (c === C1_CSI) return this.#to('csi-ignore');
    if (C1_STRINGS.has(c)) return this.#startString(c === 0x9d);
    return special(c) ? '' : ch; // ENQ, lone C1 controls
  }

  #escape(c: number, ch: string): string {
    if (isC0(c)) return this.#control(c, ch);
    if (c === DEL) return '';
    if (c >= 0x80) return this.#abandon(c, ch);
    if (c < 0x30) return this.#to('escape-intermediate', this.#seq + ch);
    if (ch === '[') return this.#to('csi', '\x1b[');
    if (STRING_AFTER_ESC.has(ch)) return this.#startString(ch === ']' || ch === 'k');
    const seq = this.#seq + ch;
    this.#to('ground');
    return ESC_DRAWS.has(ch) ? seq : ''; // DECID (ESC Z) asks for a report; a lone ST ends nothing
  }

  #escapeIntermediate(c: number, ch: string): string {
    if (isC0(c)) return this.#control(c, ch);
    if (c === DEL) return '';
    if (c >= 0x80) return this.#abandon(c, ch);
    if (c < 0x30) return this.#seq.length > 8 ? this.#to('ground') : this.#to('escape-intermediate', this.#seq + ch);
    const seq = this.#seq + ch;
    this.#to('ground');
    return escapeDraws(seq) ? seq : '';
  }

  #csi(c: number, ch: string): string {
    if (isC0(c)) return this.#control(c, ch);
    if (c === DEL) return '';
    if (c >= 0x80) return this.#abandon(c, ch);
    if (c >= 0x40) {
      const seq = this.#seq + ch;
      const kept = this.#state === 'csi' && csiDraws(seq);
      this.#to('ground');
      return kept ? seq : '';
    }
    if (this.#state === 'csi-ignore') return '';
    // A parameter after an intermediate, or a sequence past the cap, is dropped to its final byte.
    const late = c >= 0x30 && /[ -/]/.test(this.#seq.slice(2));
    if (late || this.#seq.length >= MAX_CSI) return this.#to('csi-ignore');
    this.#seq += ch;
    return '';
  }

  #string(c: number, ch: string): string {
    if (c === ESC) return this.#to('string-escape');
    if (c === C1_ST || c === CAN || c === SUB || (c === BEL && this.#belEnds)) return this.#to('ground');
    if (++this.#stringLength > MAX_STRING) return this.#abandon(c, ch);
    return '';
  }
}

/** Charset designation (ESC ( B and the like), DEC line sizes and screen alignment, 7-bit controls; not ESC % (leaving UTF-8 would let multibyte text carry 8-bit controls). */
function escapeDraws(seq: string): boolean {
  const intermediate = seq[1]!;
  if ('()*+-./'.includes(intermediate)) return true;
  if (seq.length !== 3) return false;
  return (intermediate === '#' && '34568'.includes(seq[2]!)) || seq === '\x1b F';
}

function csiDraws(seq: string): boolean {
  const body = seq.slice(2, -1);
  const marker = /^[<=>?]/.test(body) ? body[0]! : '';
  const params = body.slice(marker.length).replace(/[ -/]+$/, '');
  const intermediates = body.slice(marker.length + params.length);
  if (/[<=>?]/.test(params)) return false;
  // DECANM off puts the terminal in VT52 mode, whose sequences this parser does not read.
  if (marker === '?' && seq.endsWith('l') && params.split(';').includes('2')) return false;
  return CSI_DRAWS.has(marker + intermediates + seq.at(-1)!);
}
