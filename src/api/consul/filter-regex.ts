// The `matches` operator of Consul's ?filter= language takes a Go regular expression: RE2
// syntax, matched in time linear in the text. JavaScript's RegExp backtracks, so `(a+)+$` or
// just `.*.*.*x` against a 4 KiB check output would hold the event loop for minutes. So we
// do not hand user patterns to RegExp: this module parses Go's syntax and matches with a
// Thompson NFA (every state advanced in step over the text, as RE2 does), so the cost is at
// most (text length × program size) whatever the pattern.
//
// Covered, as Go's regexp/syntax: literals, `.`, `[...]` classes with ranges, negation and
// ASCII classes (`[[:alpha:]]`), `\d \w \s \pL \p{Greek}` and their negations, escapes
// (`\n`, `\x41`, `\x{263a}`, `\101`, `\Q...\E`), groups `(...)`, `(?:...)`, `(?P<n>...)`,
// `(?<n>...)`, flags `(?ims)`/`(?ims:...)` (and `U`, which cannot change a yes/no answer),
// alternation, `* + ? {n} {n,} {n,m}` (counts up to 1000) and their lazy forms, and the
// assertions `^ $ \A \z \b \B`. Refused as in Go: backreferences and lookaround.
//
// A single character class is checked with a one-character JavaScript RegExp (`^[...]$`),
// which cannot backtrack; everything else is our own matching.

/** Go's regexp/syntax caps repetition counts at 1000. */
const maxRepeatCount = 1000;
/** Largest compiled program (instructions), the bound on the per-character cost. */
const programSizeMax = 5000;
/** Deepest group nesting (Go caps at 1000; ours also bounds the parser's recursion). */
const groupDepthMax = 100;

/** ASCII classes of Go's regexp/syntax (`[[:alpha:]]`), as JavaScript class contents. */
const posixClasses: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** Characters that must stay escaped in a `u`-mode RegExp outside a class. */
const syntaxChars = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);

export class RegexSyntaxError extends Error {}

/** A compiled Go regular expression. */
export interface GoRegex {
  /** Whether the pattern matches anywhere in text (Go's MatchString). */
  test(text: string): boolean;
}

interface Flags {
  readonly caseInsensitive: boolean;
  readonly multiLine: boolean;
  readonly dotAll: boolean;
}

type Assertion = 'beginLine' | 'endLine' | 'beginText' | 'endText' | 'wordBoundary' | 'notWordBoundary';

type Ast =
  | { readonly kind: 'char'; readonly test: (cp: number) => boolean }
  | { readonly kind: 'assert'; readonly assertion: Assertion }
  | { readonly kind: 'concat'; readonly items: readonly Ast[] }
  | { readonly kind: 'alternate'; readonly items: readonly Ast[] }
  | { readonly kind: 'repeat'; readonly item: Ast; readonly min: number; readonly max: number };

/** Parse an RE2 pattern and compile it, or throw RegexSyntaxError saying why not. */
export function compileGoRegex(pattern: string): GoRegex {
  const ast = new RegexParser(pattern).parse();
  const program = compile(ast);
  return { test: (text: string) => run(program, text) };
}

// --- parsing -------------------------------------------------------------------------------

class RegexParser {
  private i = 0;
  private depth = 0;
  private flags: Flags = { caseInsensitive: false, multiLine: false, dotAll: false };

  constructor(private readonly pattern: string) {}

  parse(): Ast {
    const ast = this.alternation();
    if (this.i < this.pattern.length) throw new RegexSyntaxError(`unexpected ): \`${this.pattern}\``);
    return ast;
  }

  private alternation(): Ast {
    const items = [this.concatenation()];
    while (this.pattern[this.i] === '|') {
      this.i += 1;
      items.push(this.concatenation());
    }
    return items.length === 1 ? (items[0] as Ast) : { kind: 'alternate', items };
  }

  private concatenation(): Ast {
    const items: Ast[] = [];
    for (;;) {
      const c = this.pattern[this.i];
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this.atom();
      if (atom === null) continue;
      items.push(this.repetitions(atom));
    }
    return items.length === 1 ? (items[0] as Ast) : { kind: 'concat', items };
  }

  /** Apply the quantifiers that follow an atom. */
  private repetitions(atom: Ast): Ast {
    const repeat = readRepeat(this.pattern, this.i);
    if (repeat === null) return atom;
    this.i += repeat.consumed;
    if (this.pattern[this.i] === '?') this.i += 1; // lazy: the same yes/no answer
    const again = readRepeat(this.pattern, this.i);
    if (again !== null)
      throw new RegexSyntaxError(`invalid nested repetition operator: \`${repeat.text}${again.text}\``);
    return { kind: 'repeat', item: atom, min: repeat.min, max: repeat.max };
  }

  /** One atom; null for a flag group such as `(?i)`, which only changes the flags. */
  private atom(): Ast | null {
    const p = this.pattern;
    const c = p[this.i] as string;
    const repeat = readRepeat(p, this.i);
    if (repeat !== null)
      throw new RegexSyntaxError(`missing argument to repetition operator: \`${repeat.text}\``);
    if (c === '(') return this.group();
    if (c === '[') {
      const { text, consumed } = translateClass(p, this.i);
      this.i += consumed;
      return this.jsClass(text);
    }
    if (c === '.') {
      this.i += 1;
      const dotAll = this.flags.dotAll;
      return { kind: 'char', test: (cp) => dotAll || cp !== 10 };
    }
    if (c === '^' || c === '$') {
      this.i += 1;
      const multiLine = this.flags.multiLine;
      const assertion: Assertion =
        c === '^' ? (multiLine ? 'beginLine' : 'beginText') : multiLine ? 'endLine' : 'endText';
      return { kind: 'assert', assertion };
    }
    if (c === '\\') return this.escape();
    const cp = p.codePointAt(this.i) as number;
    this.i += cp > 0xffff ? 2 : 1;
    return this.literal(cp);
  }

  private escape(): Ast | null {
    const p = this.pattern;
    const next = p[this.i + 1];
    const assertions: Record<string, Assertion> = {
      A: 'beginText',
      z: 'endText',
      b: 'wordBoundary',
      B: 'notWordBoundary',
    };
    if (next !== undefined && assertions[next] !== undefined) {
      this.i += 2;
      return { kind: 'assert', assertion: assertions[next] as Assertion };
    }
    if (next === 'Q') {
      const end = p.indexOf('\\E', this.i + 2);
      const body = end === -1 ? p.slice(this.i + 2) : p.slice(this.i + 2, end);
      this.i = end === -1 ? p.length : end + 2;
      const items = Array.from(body, (ch) => this.literal(ch.codePointAt(0) as number));
      return items.length === 1 ? (items[0] as Ast) : { kind: 'concat', items };
    }
    if (next === 'E') {
      this.i += 2;
      return null;
    }
    const { text, consumed } = translateEscape(p, this.i, false);
    this.i += consumed;
    return this.jsClass(text);
  }

  private group(): Ast | null {
    const p = this.pattern;
    const start = this.i;
    if (
      p.startsWith('(?P<', start) ||
      (p.startsWith('(?<', start) && !/^\(\?<[=!]/.test(p.slice(start, start + 4)))
    ) {
      const close = p.indexOf('>', start);
      const name = close === -1 ? '' : p.slice(p.indexOf('<', start) + 1, close);
      if (!/^[A-Za-z0-9_]+$/.test(name))
        throw new RegexSyntaxError(`invalid named capture: \`${p.slice(start)}\``);
      this.i = close + 1;
    } else if (p[start + 1] === '?') {
      const m = /^\(\?(-?[imsU]+|[imsU]+-[imsU]*|)(:|\))/.exec(p.slice(start, start + 16));
      if (m === null || (m[1] === '' && m[2] === ')')) {
        const shown = p.slice(start, start + (p[start + 2] === '<' ? 4 : 3));
        throw new RegexSyntaxError(`invalid or unsupported Perl syntax: \`${shown}\``);
      }
      const flags = this.applyFlags(m[1] ?? '', p.slice(start, start + m[0].length));
      this.i = start + m[0].length;
      if (m[2] === ')') {
        // (?i): the flags hold to the end of the enclosing group.
        this.flags = flags;
        return null;
      }
      return this.groupBody(flags);
    } else {
      this.i = start + 1;
    }
    return this.groupBody(this.flags);
  }

  private groupBody(flags: Flags): Ast {
    this.depth += 1;
    if (this.depth > groupDepthMax) throw new RegexSyntaxError('expression nests too deeply');
    const outer = this.flags;
    this.flags = flags;
    const body = this.alternation();
    this.flags = outer;
    this.depth -= 1;
    if (this.pattern[this.i] !== ')') throw new RegexSyntaxError(`missing closing ): \`${this.pattern}\``);
    this.i += 1;
    return body;
  }

  private applyFlags(spec: string, shown: string): Flags {
    let { caseInsensitive, multiLine, dotAll } = this.flags;
    let value = true;
    let seenMinus = false;
    for (const f of spec) {
      if (f === '-') {
        if (seenMinus) throw new RegexSyntaxError(`invalid or unsupported Perl syntax: \`${shown}\``);
        seenMinus = true;
        value = false;
      } else if (f === 'i') caseInsensitive = value;
      else if (f === 'm') multiLine = value;
      else if (f === 's') dotAll = value;
      // 'U' (ungreedy) changes which match is found, never whether one is.
    }
    if (spec.endsWith('-')) throw new RegexSyntaxError(`invalid or unsupported Perl syntax: \`${shown}\``);
    return { caseInsensitive, multiLine, dotAll };
  }

  private literal(cp: number): Ast {
    if (!this.flags.caseInsensitive) return { kind: 'char', test: (x) => x === cp };
    const ch = String.fromCodePoint(cp);
    const lower = ch.toLowerCase();
    const upper = ch.toUpperCase();
    return {
      kind: 'char',
      test: (x) => {
        if (x === cp) return true;
        const xs = String.fromCodePoint(x);
        return xs.toLowerCase() === lower || xs.toUpperCase() === upper;
      },
    };
  }

  /** A one-character class, checked by a JavaScript RegExp that can only match one character. */
  private jsClass(text: string): Ast {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${text})$`, this.flags.caseInsensitive ? 'ui' : 'u');
    } catch (err) {
      throw new RegexSyntaxError(err instanceof Error ? err.message : String(err));
    }
    return { kind: 'char', test: (cp) => re.test(String.fromCodePoint(cp)) };
  }
}

// --- compiling to a Thompson NFA ----------------------------------------------------------------

type Instruction =
  | { op: 'char'; test: (cp: number) => boolean; next: number }
  | { op: 'split'; next: number; alt: number }
  | { op: 'assert'; assertion: Assertion; next: number }
  | { op: 'match' };

function compile(ast: Ast): Instruction[] {
  const program: Instruction[] = [];
  const emit = (instruction: Instruction): number => {
    if (program.length >= programSizeMax) throw new RegexSyntaxError('expression too large');
    program.push(instruction);
    return program.length - 1;
  };
  // Each fragment is compiled so that it continues at the instruction emitted after it; a
  // placeholder `next` of -1 is patched to "the end" when the fragment closes.
  const patch = (from: number, to: number, target: number) => {
    for (let pc = from; pc < to; pc++) {
      const ins = program[pc] as Instruction;
      if (ins.op === 'match') continue;
      if (ins.next === -1) ins.next = target;
      if (ins.op === 'split' && ins.alt === -1) ins.alt = target;
    }
  };
  const fragment = (node: Ast): void => {
    const start = program.length;
    switch (node.kind) {
      case 'char':
        emit({ op: 'char', test: node.test, next: start + 1 });
        return;
      case 'assert':
        emit({ op: 'assert', assertion: node.assertion, next: start + 1 });
        return;
      case 'concat':
        for (const item of node.items) fragment(item);
        return;
      case 'alternate': {
        // split L1, next-split; L1: a; jmp end; ...
        const jumps: number[] = [];
        node.items.forEach((item, index) => {
          const last = index === node.items.length - 1;
          const split = last ? -1 : emit({ op: 'split', next: program.length + 1, alt: -1 });
          fragment(item);
          if (!last) {
            jumps.push(emit({ op: 'split', next: -1, alt: -1 }));
            (program[split] as { alt: number }).alt = program.length;
          }
        });
        for (const j of jumps) {
          const ins = program[j] as { next: number; alt: number };
          ins.next = program.length;
          ins.alt = program.length;
        }
        return;
      }
      case 'repeat': {
        for (let n = 0; n < node.min; n++) fragment(node.item);
        if (node.max === Number.POSITIVE_INFINITY) {
          // L: split body, end; body; jmp L
          const loop = emit({ op: 'split', next: program.length + 1, alt: -1 });
          fragment(node.item);
          emit({ op: 'split', next: loop, alt: loop });
          (program[loop] as { alt: number }).alt = program.length;
          return;
        }
        // Optional copies: split body, end; body; split body, end; body ... end
        const optionalStart = program.length;
        for (let n = node.min; n < node.max; n++) {
          emit({ op: 'split', next: program.length + 1, alt: -1 });
          fragment(node.item);
        }
        patch(optionalStart, program.length, program.length);
        return;
      }
    }
  };
  fragment(ast);
  emit({ op: 'match' });
  return program;
}

// --- matching -------------------------------------------------------------------------------------

function isWordChar(cp: number | undefined): boolean {
  return (
    cp !== undefined &&
    ((cp >= 48 && cp <= 57) || (cp >= 65 && cp <= 90) || (cp >= 97 && cp <= 122) || cp === 95)
  );
}

function holds(assertion: Assertion, previous: number | undefined, current: number | undefined): boolean {
  switch (assertion) {
    case 'beginText':
      return previous === undefined;
    case 'endText':
      return current === undefined;
    case 'beginLine':
      return previous === undefined || previous === 10;
    case 'endLine':
      return current === undefined || current === 10;
    case 'wordBoundary':
      return isWordChar(previous) !== isWordChar(current);
    case 'notWordBoundary':
      return isWordChar(previous) === isWordChar(current);
  }
}

/** Unanchored search: true if the program matches at some position of text. */
function run(program: readonly Instruction[], text: string): boolean {
  const codePoints = Array.from(text, (ch) => ch.codePointAt(0) as number);
  let current: number[] = [];
  let next: number[] = [];
  const onList = new Int32Array(program.length).fill(-1);
  const stack: number[] = [];
  let generation = 0;

  // Follow splits and assertions from pc, adding every char/match instruction reached.
  const add = (
    list: number[],
    pc: number,
    previous: number | undefined,
    here: number | undefined,
  ): boolean => {
    stack.push(pc);
    while (stack.length > 0) {
      const at = stack.pop() as number;
      if (onList[at] === generation) continue;
      onList[at] = generation;
      const ins = program[at] as Instruction;
      switch (ins.op) {
        case 'match':
          stack.length = 0;
          return true;
        case 'char':
          list.push(at);
          break;
        case 'split':
          stack.push(ins.alt, ins.next);
          break;
        case 'assert':
          if (holds(ins.assertion, previous, here)) stack.push(ins.next);
          break;
      }
    }
    return false;
  };

  for (let position = 0; position <= codePoints.length; position++) {
    const previous = position === 0 ? undefined : codePoints[position - 1];
    const here = codePoints[position];
    // A new attempt starts at every position (the implicit leading .*? of an unanchored search).
    if (add(current, 0, previous, here)) return true;
    if (here === undefined) break;
    generation += 1;
    next.length = 0;
    for (const pc of current) {
      const ins = program[pc] as Extract<Instruction, { op: 'char' }>;
      if (ins.test(here) && add(next, ins.next, here, codePoints[position + 1])) return true;
    }
    [current, next] = [next, current];
  }
  return false;
}

interface Repeat {
  text: string;
  consumed: number;
  min: number;
  max: number;
}

/** A quantifier at pattern[i], or null. Go takes a `{` that starts no valid repeat literally. */
function readRepeat(pattern: string, i: number): Repeat | null {
  const c = pattern[i];
  if (c === '*') return { text: c, consumed: 1, min: 0, max: Number.POSITIVE_INFINITY };
  if (c === '+') return { text: c, consumed: 1, min: 1, max: Number.POSITIVE_INFINITY };
  if (c === '?') return { text: c, consumed: 1, min: 0, max: 1 };
  if (c !== '{') return null;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i, i + 24));
  if (m === null) return null;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
  if (min > maxRepeatCount || (Number.isFinite(max) && max > maxRepeatCount) || max < min) {
    throw new RegexSyntaxError(`invalid repeat count: \`${m[0]}\``);
  }
  return { text: m[0], consumed: m[0].length, min, max };
}

function hexEscape(codePoint: number): string {
  return `\\u{${codePoint.toString(16)}}`;
}

/** Escape one literal character for use in a u-mode RegExp (inside a class when inClass). */
function literal(ch: string, inClass: boolean): string {
  if (inClass) return ch === ']' || ch === '\\' || ch === '^' || ch === '-' || ch === '[' ? `\\${ch}` : ch;
  return syntaxChars.has(ch) ? `\\${ch}` : ch;
}

/**
 * Translate the escape at pattern[i] (a backslash). Returns the JavaScript text and how many
 * characters of the pattern it used.
 */
function translateEscape(pattern: string, i: number, inClass: boolean): { text: string; consumed: number } {
  const next = pattern[i + 1];
  if (next === undefined) throw new RegexSyntaxError('trailing backslash at end of expression');
  switch (next) {
    case 'a':
      return { text: '\\x07', consumed: 2 };
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
    case 'd':
    case 'D':
    case 'w':
    case 'W':
      return { text: `\\${next}`, consumed: 2 };
    case 'b':
    case 'B':
      // Inside a Go class \b is not allowed; outside it is the ASCII word boundary, as in JS.
      if (inClass) throw new RegexSyntaxError(`invalid escape sequence: \`\\${next}\``);
      return { text: `\\${next}`, consumed: 2 };
    case 's':
      return { text: inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]', consumed: 2 };
    case 'S':
      if (inClass) throw new RegexSyntaxError('\\S inside a character class is not supported');
      return { text: '[^\\t\\n\\f\\r ]', consumed: 2 };
    case 'A':
      if (inClass) throw new RegexSyntaxError('invalid escape sequence: `\\A`');
      return { text: '(?<![\\s\\S])', consumed: 2 };
    case 'z':
      if (inClass) throw new RegexSyntaxError('invalid escape sequence: `\\z`');
      return { text: '(?![\\s\\S])', consumed: 2 };
    case 'Q': {
      const end = pattern.indexOf('\\E', i + 2);
      const body = end === -1 ? pattern.slice(i + 2) : pattern.slice(i + 2, end);
      const text = Array.from(body, (ch) => literal(ch, inClass)).join('');
      return { text, consumed: (end === -1 ? pattern.length : end + 2) - i };
    }
    case 'E':
      return { text: '', consumed: 2 };
    case 'x': {
      const braced = /^\\x\{([0-9A-Fa-f]{1,6})\}/.exec(pattern.slice(i, i + 10));
      if (braced !== null) {
        const cp = Number.parseInt(braced[1] ?? '', 16);
        if (cp > 0x10ffff) throw new RegexSyntaxError(`invalid escape sequence: \`${braced[0]}\``);
        return { text: hexEscape(cp), consumed: braced[0].length };
      }
      const two = /^\\x([0-9A-Fa-f]{2})/.exec(pattern.slice(i, i + 4));
      if (two === null) throw new RegexSyntaxError(`invalid escape sequence: \`${pattern.slice(i, i + 4)}\``);
      return { text: hexEscape(Number.parseInt(two[1] ?? '', 16)), consumed: 4 };
    }
    case 'p':
    case 'P': {
      const braced = /^\\[pP]\{(\^?)([A-Za-z_]+)\}/.exec(pattern.slice(i, i + 40));
      let name: string;
      let negate = next === 'P';
      let consumed: number;
      if (braced !== null) {
        if (braced[1] === '^') negate = !negate;
        name = braced[2] ?? '';
        consumed = braced[0].length;
      } else {
        const single = pattern[i + 2];
        if (single === undefined || !/[A-Za-z]/.test(single)) {
          throw new RegexSyntaxError(`invalid character class range: \`${pattern.slice(i, i + 3)}\``);
        }
        name = single;
        consumed = 3;
      }
      // One- and two-letter names are general categories; longer ones are scripts in Go.
      const property = name.length <= 2 || name === 'Any' ? name : `Script=${name}`;
      if (name === 'Any') return { text: negate ? '[^\\s\\S]' : '[\\s\\S]', consumed };
      return { text: `\\${negate ? 'P' : 'p'}{${property}}`, consumed };
    }
    case 'k':
      throw new RegexSyntaxError('invalid escape sequence: `\\k` (backreferences are not supported)');
    default:
      break;
  }
  if (next >= '0' && next <= '9') {
    // Go: \0 and \NN... are octal; a lone \1-\9 would be a backreference, which RE2 refuses.
    const oct = /^\\([0-7]{1,3})/.exec(pattern.slice(i, i + 4));
    if (oct === null || (next !== '0' && (oct[1] ?? '').length < 2)) {
      throw new RegexSyntaxError(`invalid escape sequence: \`\\${next}\` (backreferences are not supported)`);
    }
    const value = Number.parseInt(oct[1] ?? '', 8);
    if (value > 0xff) throw new RegexSyntaxError(`invalid escape sequence: \`${oct[0]}\``);
    return { text: hexEscape(value), consumed: oct[0].length };
  }
  // Go allows escaping any ASCII punctuation; u-mode RegExp only its own syntax characters.
  if (/[!-/:-@[-`{-~]/.test(next)) return { text: literal(next, inClass), consumed: 2 };
  throw new RegexSyntaxError(`invalid escape sequence: \`\\${next}\``);
}

/** Translate the bracket class starting at pattern[i] (a `[`). */
function translateClass(pattern: string, i: number): { text: string; consumed: number } {
  let j = i + 1;
  let out = '[';
  if (pattern[j] === '^') {
    out += '^';
    j += 1;
  }
  // Go: a `]` first in the class is a literal; in JavaScript `[]` is the empty class.
  let first = true;
  for (;;) {
    const c = pattern[j];
    if (c === undefined) throw new RegexSyntaxError(`missing closing ]: \`${pattern.slice(i)}\``);
    if (c === ']' && !first) {
      out += ']';
      j += 1;
      break;
    }
    first = false;
    if (c === '[' && pattern[j + 1] === ':') {
      const m = /^\[:(\^?)([a-z]+):\]/.exec(pattern.slice(j, j + 12));
      const contents = m === null ? undefined : posixClasses[m[2] ?? ''];
      if (m === null || contents === undefined) {
        throw new RegexSyntaxError(`invalid character class range: \`${pattern.slice(j, j + 10)}\``);
      }
      if (m[1] === '^') throw new RegexSyntaxError(`negated ASCII class \`${m[0]}\` is not supported`);
      out += contents;
      j += m[0].length;
      continue;
    }
    if (c === '\\') {
      const { text, consumed } = translateEscape(pattern, j, true);
      out += text;
      j += consumed;
      continue;
    }
    if (c === '-') {
      // A range dash between two members stays a range; elsewhere it is literal.
      const atEdge = out.endsWith('[') || out.endsWith('[^') || pattern[j + 1] === ']';
      out += atEdge ? '\\-' : '-';
      j += 1;
      continue;
    }
    out += c === '[' || c === ']' || c === '/' ? `\\${c}` : c;
    j += 1;
  }
  return { text: out, consumed: j - i };
}
