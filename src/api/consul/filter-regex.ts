// The `matches` operator of Consul's ?filter= language takes a Go regular expression (RE2
// syntax, matched in linear time). JavaScript's engine backtracks, so a pattern like `(a+)+$`
// could pin the event loop for minutes on a 30-character name. This module translates the RE2
// syntax Consul users write into an equivalent JavaScript RegExp and refuses what either cannot
// express or cannot run safely:
//
// - RE2 has no backreferences or lookaround: `\1`, `\k<n>`, `(?=`, `(?!`, `(?<=`, `(?<!` are
//   errors, as they are in Go.
// - Leading flag groups `(?i)`, `(?s)`, `(?m)` become RegExp flags; flags elsewhere, `(?i:...)`
//   and ungreedy `(?U)` are refused (Node 20's RegExp has no inline modifiers).
// - `(?P<name>...)` becomes `(?<name>...)`; `\A` and `\z` become lookarounds that pin the
//   start and end of the text; `\Q...\E` becomes escaped literals; `\pL` becomes `\p{L}`;
//   `[[:alpha:]]` and the other ASCII classes are expanded; `\s` is Go's ASCII `[\t\n\f\r ]`.
// - Nested unbounded repetition (a `*`, `+` or `{n,}` applied to a group that itself contains
//   one) is refused: it is the shape that makes a backtracking engine exponential. Overlapping
//   alternatives under a repetition (`(a|a)*`) are not detected; see the note in filter.ts.
//
// The pattern is always compiled with the `u` flag so `.` matches a whole code point, as Go's
// matches a whole rune.

/** Go's regexp/syntax caps repetition counts at 1000. */
const maxRepeatCount = 1000;

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

interface GroupFrame {
  /** The group (or the pattern) contains an unbounded repetition somewhere inside it. */
  hasUnboundedRepeat: boolean;
}

/**
 * Translate an RE2 pattern to a JavaScript RegExp, or throw RegexSyntaxError saying why not.
 */
export function compileGoRegex(pattern: string): RegExp {
  let flags = 'u';
  let i = 0;
  // Leading flag groups, e.g. (?i) or (?is).
  for (;;) {
    const m = /^\(\?([imsU]+)\)/.exec(pattern.slice(i));
    if (m === null) break;
    const groupFlags = m[1] ?? '';
    if (groupFlags.includes('U')) throw new RegexSyntaxError('ungreedy flag (?U) is not supported');
    for (const f of groupFlags) if (!flags.includes(f)) flags += f;
    i += m[0].length;
  }

  let out = '';
  const groups: GroupFrame[] = [{ hasUnboundedRepeat: false }];
  // What the last emitted atom was, so a following quantifier knows what it applies to.
  let lastAtom: 'none' | 'atom' | 'group' | 'quantified' = 'none';
  let lastGroupHadUnbounded = false;

  const top = (): GroupFrame => {
    const frame = groups[groups.length - 1];
    if (frame === undefined) throw new RegexSyntaxError('internal: empty group stack');
    return frame;
  };

  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const { text, consumed } = translateEscape(pattern, i, false);
      out += text;
      i += consumed;
      lastAtom = text === '' ? lastAtom : 'atom';
      continue;
    }
    if (c === '[') {
      const { text, consumed } = translateClass(pattern, i);
      out += text;
      i += consumed;
      lastAtom = 'atom';
      continue;
    }
    if (c === '(') {
      if (pattern.startsWith('(?P<', i)) {
        out += '(?<';
        i += 4;
      } else if (
        pattern.startsWith('(?<', i) &&
        !pattern.startsWith('(?<=', i) &&
        !pattern.startsWith('(?<!', i)
      ) {
        out += '(?<';
        i += 3;
      } else if (pattern.startsWith('(?:', i)) {
        out += '(?:';
        i += 3;
      } else if (pattern[i + 1] === '?') {
        const rest = pattern.slice(i, i + 4);
        if (/^\(\?(=|!|<=|<!)/.test(rest)) {
          throw new RegexSyntaxError(
            `invalid or unsupported Perl syntax: \`${rest.slice(0, rest[2] === '<' ? 4 : 3)}\``,
          );
        }
        throw new RegexSyntaxError(`unsupported flag group: \`${pattern.slice(i, i + 5)}\``);
      } else {
        out += '(';
        i += 1;
      }
      groups.push({ hasUnboundedRepeat: false });
      lastAtom = 'none';
      continue;
    }
    if (c === ')') {
      const frame = groups.pop();
      if (frame === undefined || groups.length === 0) throw new RegexSyntaxError('unexpected )');
      if (frame.hasUnboundedRepeat) top().hasUnboundedRepeat = true;
      lastGroupHadUnbounded = frame.hasUnboundedRepeat;
      out += ')';
      i += 1;
      lastAtom = 'group';
      continue;
    }
    const repeat = readRepeat(pattern, i);
    if (repeat !== null) {
      if (lastAtom === 'none')
        throw new RegexSyntaxError(`missing argument to repetition operator: \`${repeat.text}\``);
      if (lastAtom === 'quantified')
        throw new RegexSyntaxError(`invalid nested repetition operator: \`${repeat.text}\``);
      if (repeat.unbounded) {
        if (lastAtom === 'group' && lastGroupHadUnbounded) {
          throw new RegexSyntaxError(
            'nested repetition (a repeated group containing a repetition) is refused: it can take exponential time',
          );
        }
        top().hasUnboundedRepeat = true;
      }
      out += repeat.text;
      i += repeat.consumed;
      // A lazy marker belongs to the quantifier.
      if (pattern[i] === '?') {
        out += '?';
        i += 1;
      }
      lastAtom = 'quantified';
      continue;
    }
    if (c === '{' || c === '}') {
      // Go takes a brace that does not start a valid repeat literally; u-mode RegExp does not.
      out += `\\${c}`;
    } else if (c === ']' || c === '/') {
      out += `\\${c}`;
    } else {
      out += c;
    }
    i += 1;
    lastAtom = c === '|' || c === '^' || c === '$' ? 'none' : 'atom';
  }
  if (groups.length !== 1) throw new RegexSyntaxError('missing closing )');
  try {
    return new RegExp(out, flags);
  } catch (err) {
    throw new RegexSyntaxError(err instanceof Error ? err.message : String(err));
  }
}

interface Repeat {
  text: string;
  consumed: number;
  /** More than one repetition possible: `*`, `+`, `{n,}` or `{n,m}` with m > 1. */
  unbounded: boolean;
}

function readRepeat(pattern: string, i: number): Repeat | null {
  const c = pattern[i];
  if (c === '*' || c === '+') return { text: c, consumed: 1, unbounded: true };
  if (c === '?') return { text: c, consumed: 1, unbounded: false };
  if (c !== '{') return null;
  const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i, i + 24));
  if (m === null) return null;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
  if (min > maxRepeatCount || (Number.isFinite(max) && max > maxRepeatCount) || max < min) {
    throw new RegexSyntaxError(`invalid repeat count: \`${m[0]}\``);
  }
  return { text: m[0], consumed: m[0].length, unbounded: max > 1 };
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
