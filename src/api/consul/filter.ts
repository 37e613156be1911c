// Consul's `?filter=` expression language (go-bexpr), over the JSON objects our list endpoints
// return. Reference: Consul's "API Filtering" docs page, and go-bexpr v0.1.2 — the version
// Consul links (its grammar.peg, evaluate.go and validate.go) — whose facts we match:
//
//   Or    <- And (_ "or" _ And)*                precedence: not > and > or
//   And   <- Not (_ "and" _ Not)*
//   Not   <- "not" _ Not / "(" _? Or _? ")" / Match
//   Match <- Selector Op Value                  ==  !=  contains  not contains  matches  not matches
//          / Selector (_ "is" _ ("not" _)? "empty")
//          / Value (_ ("not" _)? "in" _) Selector
//   Selector <- Ident ("." Ident / "[" String "]")*      Ident <- [a-zA-Z][a-zA-Z0-9_]*
//   Value    <- Selector (its dotted text) / Number / String ("..." with Go escapes, or `raw`)
//
// `contains` is `in` with its operands swapped. Words are separated by whitespace exactly where
// the grammar asks for it (`not(` is not `not (`). Two extensions from later go-bexpr: a quoted
// JSON Pointer selector ("/Service/Meta/my-key") and `.N` to pick element N of a list.
//
// Semantics (go-bexpr v0.1.2 evaluate.go, over JSON instead of Go types):
// - The literal is converted to the type of the field it is compared with: strings compare as
//   written, numbers via Go's ParseInt/ParseFloat, booleans via ParseBool. A literal that does
//   not convert is an error, as in Consul ("Failed to coerce value ...").
// - `in`/`contains`: substring of a string, element of a list (each element compared as ==),
//   key of a map.
// - `is empty`: a list or map with no entries, or (later go-bexpr) the empty string.
// - A selector that runs through a list of objects (`Checks.Status`) is an implicit "any": the
//   whole match, negated operators included, is tried on each element and is true if it holds
//   for one. So `Checks.Status != passing` means "some check is not passing", and every match
//   through an empty list is false.
// - An operator that makes no sense for the value's type (`Service.Tags == x`, `Port is empty`,
//   `Meta matches x`) is an error ("Invalid match operator ...").
//
// The one decision of our own — missing fields. go-bexpr checks selectors against the Go type
// before evaluating, so `Service.Bogus` is an error ("Selector ... is not valid") even on an
// empty list, while a missing *map key* (`Service.Meta.nokey`) is simply absent. We see only
// JSON, where a struct field and a map key look alike, so by default every absent path is
// treated as an absent map key: `==`, `in`, `matches` and `is not empty` are false, `!=`,
// `not in`, `not matches` and `is empty` are true (null counts as absent: a nil map or list).
// An endpoint can restore Consul's error by passing `fields`, the field names of its items
// (nested for struct-valued fields), in which case an unknown selector fails compilation.
// (go-bexpr v0.1.2 says `matches` is true on a missing key; we follow later go-bexpr: false.)
//
// Every error is a FilterError whose message reads like Consul's, prefixed with
// "Failed to create boolean expression evaluator: "; the HTTP layer answers it with 400.
//
// Limits against hostile input: the expression is at most 4 KiB and nests at most 32 levels;
// regular expressions use Go's syntax and are matched in linear time by our own NFA, never by
// a backtracking RegExp (see filter-regex.ts).

import { compileGoRegex, type GoRegex, RegexSyntaxError } from './filter-regex.js';

/** Longest expression accepted, in UTF-8 bytes. */
export const FILTER_EXPRESSION_BYTES_MAX = 4096;
/** Deepest nesting of parentheses and `not` accepted. */
export const FILTER_NESTING_DEPTH_MAX = 32;

const errorPrefix = 'Failed to create boolean expression evaluator: ';

/** A filter expression that does not parse, or that cannot be evaluated against an item. */
export class FilterError extends Error {
  override readonly name = 'FilterError';
}

/**
 * The selectable fields of an endpoint's items: each name maps to the fields beneath it (for a
 * struct, or a list of structs), or to null when anything may follow (a map such as Meta) or
 * nothing can (a string, number or list of strings).
 */
export interface FilterFields {
  readonly [name: string]: FilterFields | null;
}

export interface FilterOptions {
  /** When given, a selector naming a field not listed here is an error, as in Consul. */
  readonly fields?: FilterFields;
}

/** A compiled filter: true when the item matches. Throws FilterError on a type mismatch. */
export type FilterPredicate = (item: unknown) => boolean;

type MatchOp = 'equal' | 'notEqual' | 'in' | 'notIn' | 'isEmpty' | 'isNotEmpty' | 'matches' | 'notMatches';

/** go-bexpr's names for the operators, used in its error messages. */
const opNames: Readonly<Record<MatchOp, string>> = {
  equal: 'Equal',
  notEqual: 'Not Equal',
  in: 'In',
  notIn: 'Not In',
  isEmpty: 'Is Empty',
  isNotEmpty: 'Is Not Empty',
  matches: 'Matches',
  notMatches: 'Not Matches',
};

interface MatchNode {
  readonly kind: 'match';
  readonly op: MatchOp;
  readonly path: readonly string[];
  /** The raw literal; absent for `is empty` / `is not empty`. */
  readonly value?: string;
  readonly regex?: GoRegex;
}

type Node =
  | { readonly kind: 'or'; readonly terms: readonly Node[] }
  | { readonly kind: 'and'; readonly terms: readonly Node[] }
  | { readonly kind: 'not'; readonly operand: Node }
  | MatchNode;

/**
 * Compile a filter expression into a predicate. Throws FilterError when the expression does not
 * parse, is too long or deep, has a bad regular expression, or names a field not in
 * options.fields.
 */
export function compileFilter(expression: string, options: FilterOptions = {}): FilterPredicate {
  if (typeof expression !== 'string') throw new FilterError(`${errorPrefix}expression must be a string`);
  const bytes = Buffer.byteLength(expression, 'utf8');
  if (bytes > FILTER_EXPRESSION_BYTES_MAX) {
    throw new FilterError(
      `${errorPrefix}expression is ${bytes} bytes long, more than the limit of ${FILTER_EXPRESSION_BYTES_MAX}`,
    );
  }
  const ast = new Parser(expression).parse();
  if (options.fields !== undefined) checkSelectors(ast, options.fields);
  return (item: unknown) => evaluate(ast, item);
}

/**
 * The items matching the expression, in order. An undefined or empty expression (Consul's "no
 * filter") returns the items array itself.
 */
export function applyFilter<T>(
  items: readonly T[],
  expression: string | undefined,
  options?: FilterOptions,
): T[] {
  if (expression === undefined || expression === '') return items as T[];
  const matches = compileFilter(expression, options);
  return items.filter((item) => matches(item));
}

/**
 * For endpoints that answer a map ({id: service}, as /v1/agent/services and /v1/agent/checks):
 * the entries whose value matches, keys unchanged.
 */
export function filterValues<T>(
  map: Readonly<Record<string, T>>,
  expression: string | undefined,
  options?: FilterOptions,
): Record<string, T> {
  if (expression === undefined || expression === '') return { ...map };
  const matches = compileFilter(expression, options);
  const out: Record<string, T> = {};
  for (const [key, value] of Object.entries(map)) if (matches(value)) out[key] = value;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing: a character-level recursive descent that follows the PEG above, alternative by
// alternative, and reports failures the way go-bexpr's generated (pigeon) parser does:
// "line:col (offset): no match found, expected: ..." listing what could have come at the
// farthest position reached, or a rule's own message ("rule "number": Invalid number literal").

class Parser {
  private pos = 0;
  private depth = 0;
  private farthest = 0;
  private readonly expected = new Set<string>();

  constructor(private readonly src: string) {}

  parse(): Node {
    this.ws();
    const expr = this.or();
    if (expr !== null) {
      this.ws();
      if (this.pos >= this.src.length) return expr;
      this.fail('EOF');
    }
    const list = [...this.expected].sort();
    const wanted =
      list.length === 0
        ? ''
        : list.length === 1
          ? `, expected: ${list[0]}`
          : `, expected: ${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}`;
    throw this.errorAt(this.farthest, `no match found${wanted}`);
  }

  // --- the grammar -------------------------------------------------------------------------

  private or(): Node | null {
    const first = this.and();
    if (first === null) return null;
    const terms = [first];
    for (;;) {
      const save = this.pos;
      if (this.ws() && this.lit('or') && this.ws()) {
        const next = this.and();
        if (next !== null) {
          terms.push(next);
          continue;
        }
      }
      this.pos = save;
      break;
    }
    return terms.length === 1 ? first : { kind: 'or', terms };
  }

  private and(): Node | null {
    const first = this.not();
    if (first === null) return null;
    const terms = [first];
    for (;;) {
      const save = this.pos;
      if (this.ws() && this.lit('and') && this.ws()) {
        const next = this.not();
        if (next !== null) {
          terms.push(next);
          continue;
        }
      }
      this.pos = save;
      break;
    }
    return terms.length === 1 ? first : { kind: 'and', terms };
  }

  private not(): Node | null {
    const start = this.pos;
    if (this.lit('not') && this.ws()) {
      this.enter();
      const operand = this.not();
      this.depth -= 1;
      // go-bexpr folds `not not X` to X.
      if (operand !== null) return operand.kind === 'not' ? operand.operand : { kind: 'not', operand };
    }
    this.pos = start;
    return this.grouping();
  }

  private grouping(): Node | null {
    const start = this.pos;
    if (this.lit('(')) {
      this.enter();
      this.ws();
      const inner = this.or();
      this.depth -= 1;
      if (inner !== null) {
        this.ws();
        if (this.lit(')')) return inner;
        throw this.errorAt(this.pos, 'rule "grouping": Unmatched parentheses');
      }
    }
    this.pos = start;
    return this.match();
  }

  private match(): Node | null {
    const start = this.pos;
    // Selector (== | != | contains | not contains | matches | not matches) Value
    const selector = this.selector();
    if (selector !== null) {
      const afterSelector = this.pos;
      const op = this.selectorValueOp();
      if (op !== null) {
        const value = this.value();
        if (value !== null) return this.matchNode(op, selector, value);
      }
      // Selector is empty | is not empty
      this.pos = afterSelector;
      const emptyOp = this.emptinessOp();
      if (emptyOp !== null) return { kind: 'match', op: emptyOp, path: selector };
    }
    // Value (in | not in) Selector
    this.pos = start;
    const value = this.value();
    if (value !== null) {
      const op = this.inOp();
      if (op !== null) {
        const target = this.selector();
        if (target === null) throw this.errorAt(this.pos, 'rule "match": Invalid selector');
        return this.matchNode(op, target, value);
      }
    }
    this.pos = start;
    return null;
  }

  private matchNode(op: MatchOp, path: string[], value: string): MatchNode {
    if (op !== 'matches' && op !== 'notMatches') return { kind: 'match', op, path, value };
    try {
      return { kind: 'match', op, path, value, regex: compileGoRegex(value) };
    } catch (err) {
      if (!(err instanceof RegexSyntaxError)) throw err;
      throw new FilterError(
        `${errorPrefix}Failed to compile regular expression ${goQuote(value)}: ${err.message}`,
      );
    }
  }

  private selectorValueOp(): MatchOp | null {
    const start = this.pos;
    this.ws();
    if (this.lit('==')) {
      this.ws();
      return 'equal';
    }
    if (this.lit('!=')) {
      this.ws();
      return 'notEqual';
    }
    this.pos = start;
    if (this.ws()) {
      const afterWs = this.pos;
      if (this.lit('contains') && this.ws()) return 'in';
      this.pos = afterWs;
      if (this.lit('not') && this.ws() && this.lit('contains') && this.ws()) return 'notIn';
      this.pos = afterWs;
      if (this.lit('matches') && this.ws()) return 'matches';
      this.pos = afterWs;
      if (this.lit('not') && this.ws() && this.lit('matches') && this.ws()) return 'notMatches';
    }
    this.pos = start;
    return null;
  }

  private emptinessOp(): MatchOp | null {
    const start = this.pos;
    if (this.ws() && this.lit('is') && this.ws()) {
      const afterIs = this.pos;
      if (this.lit('empty')) return 'isEmpty';
      this.pos = afterIs;
      if (this.lit('not') && this.ws() && this.lit('empty')) return 'isNotEmpty';
    }
    this.pos = start;
    return null;
  }

  private inOp(): MatchOp | null {
    const start = this.pos;
    if (this.ws()) {
      const afterWs = this.pos;
      if (this.lit('in') && this.ws()) return 'in';
      this.pos = afterWs;
      if (this.lit('not') && this.ws() && this.lit('in') && this.ws()) return 'notIn';
    }
    this.pos = start;
    return null;
  }

  /** A selector's path, or null. */
  private selector(): string[] | null {
    if (this.src[this.pos] === '"') return this.jsonPointer();
    const first = this.identifier();
    if (first === null) return null;
    const path = [first];
    for (;;) {
      const save = this.pos;
      if (this.lit('.')) {
        const ident = this.identifier();
        if (ident !== null) {
          path.push(ident);
          continue;
        }
        const digits = this.run(/[0-9]/, '[0-9]');
        if (digits !== '') {
          path.push(digits);
          continue;
        }
        this.pos = save;
        break;
      }
      if (this.lit('[')) {
        this.ws();
        const litStart = this.pos;
        const key = this.stringLiteral();
        if (key === null) {
          this.pos = litStart;
          throw this.errorAt(this.pos, 'rule "index": Invalid index');
        }
        this.ws();
        if (!this.lit(']')) throw this.errorAt(this.pos, 'rule "index": Unclosed index expression');
        path.push(key);
        continue;
      }
      break;
    }
    return path;
  }

  /** Later go-bexpr: a quoted JSON Pointer, "/a/b~1c" (segments of letters, digits, -_.~:|). */
  private jsonPointer(): string[] | null {
    const start = this.pos;
    const m = /^"((?:\/[\p{L}\p{N}\-_.~:|]+)+)"/u.exec(this.src.slice(this.pos, this.pos + 1024));
    if (m === null) return null;
    const raw = m[1] ?? '';
    if (/~[^01]|~$/.test(raw)) return null;
    this.pos = start + m[0].length;
    return raw
      .slice(1)
      .split('/')
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  }

  private identifier(): string | null {
    const c = this.src[this.pos];
    if (c === undefined || !/[a-zA-Z]/.test(c)) {
      this.fail('[a-zA-Z]');
      return null;
    }
    const start = this.pos;
    this.pos += 1;
    this.run(/[a-zA-Z0-9_]/, '[a-zA-Z0-9_]');
    return this.src.slice(start, this.pos);
  }

  /** A value's raw text: a selector (joined with dots), a number or a string. */
  private value(): string | null {
    const start = this.pos;
    // A quoted value is a string even when it looks like a JSON Pointer.
    const selector = this.src[this.pos] === '"' ? null : this.selector();
    if (selector !== null) return selector.join('.');
    this.pos = start;
    const number = this.number();
    if (number !== null) return number;
    this.pos = start;
    return this.stringLiteral();
  }

  private number(): string | null {
    const start = this.pos;
    this.lit('-');
    if (!this.lit('0')) {
      const c = this.src[this.pos];
      if (c === undefined || c < '1' || c > '9') {
        this.fail('[1-9]');
        this.pos = start;
        return null;
      }
      this.pos += 1;
      this.run(/[0-9]/, '[0-9]');
    }
    const beforeFraction = this.pos;
    if (this.lit('.')) {
      if (this.run(/[0-9]/, '[0-9]') === '') this.pos = beforeFraction;
    }
    // AfterNumbers <- &(_ / EOF / ")")
    const c = this.src[this.pos];
    if (c === undefined || c === ')' || isSpace(c)) return this.src.slice(start, this.pos);
    throw this.errorAt(this.pos, 'rule "number": Invalid number literal');
  }

  /** "..." (Go escapes, no `"` inside) or `...` (raw); null if neither starts here. */
  private stringLiteral(): string | null {
    const start = this.pos;
    const quote = this.src[this.pos];
    if (quote !== '"' && quote !== '`') {
      this.fail('"\\""');
      this.fail('"`"');
      return null;
    }
    const end = this.src.indexOf(quote, start + 1);
    if (end === -1) {
      this.pos = this.src.length;
      throw this.errorAt(this.pos, 'rule "string": Unterminated string literal');
    }
    this.pos = end + 1;
    const body = this.src.slice(start + 1, end);
    if (quote === '`') return body.replaceAll('\r', '');
    const text = unquoteGo(body);
    if (text === null) throw this.errorAt(start, 'rule "string": invalid syntax');
    return text;
  }

  // --- low-level matching ------------------------------------------------------------------

  /** Optional whitespace; true if at least one character was skipped. */
  private ws(): boolean {
    const start = this.pos;
    while (this.pos < this.src.length && isSpace(this.src[this.pos] as string)) this.pos += 1;
    if (this.pos === start) this.fail('[ \\t\\r\\n]');
    return this.pos > start;
  }

  private lit(text: string): boolean {
    if (this.src.startsWith(text, this.pos)) {
      this.pos += text.length;
      return true;
    }
    this.fail(JSON.stringify(text));
    return false;
  }

  /** Zero or more characters of a class; returns them. */
  private run(cls: RegExp, description: string): string {
    const start = this.pos;
    while (this.pos < this.src.length && cls.test(this.src[this.pos] as string)) this.pos += 1;
    this.fail(description);
    return this.src.slice(start, this.pos);
  }

  /** Record that `what` was expected at the current position (pigeon's farthest failure). */
  private fail(what: string): void {
    if (this.pos > this.farthest) {
      this.farthest = this.pos;
      this.expected.clear();
    }
    if (this.pos === this.farthest) this.expected.add(what);
  }

  private enter(): void {
    this.depth += 1;
    if (this.depth > FILTER_NESTING_DEPTH_MAX) {
      throw new FilterError(
        `${errorPrefix}${this.position(this.pos)}: expression nests deeper than ${FILTER_NESTING_DEPTH_MAX} levels`,
      );
    }
  }

  /** pigeon's "line:col (offset)": col counts characters from 1, offset counts bytes from 0. */
  private position(pos: number): string {
    const before = this.src.slice(0, pos);
    const lineStart = before.lastIndexOf('\n') + 1;
    const line = before.split('\n').length;
    const col = Array.from(before.slice(lineStart)).length + 1;
    return `${line}:${col} (${Buffer.byteLength(before, 'utf8')})`;
  }

  private errorAt(pos: number, message: string): FilterError {
    return new FilterError(`${errorPrefix}${this.position(pos)}: ${message}`);
  }
}

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\r' || c === '\n';
}

/** Go's strconv.Unquote of a double-quoted string's body; null where Go reports a syntax error. */
function unquoteGo(body: string): string | null {
  if (!body.includes('\\')) return body.includes('\n') ? null : body;
  const bytes: number[] = [];
  const pushText = (text: string) => {
    for (const b of Buffer.from(text, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length; ) {
    const c = body[i] as string;
    if (c === '\n') return null;
    if (c !== '\\') {
      const cp = body.codePointAt(i) as number;
      const ch = String.fromCodePoint(cp);
      pushText(ch);
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    const simple: Record<string, string> = {
      a: '\x07',
      b: '\b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
      '\\': '\\',
      '"': '"',
    };
    if (e !== undefined && simple[e] !== undefined) {
      pushText(simple[e] as string);
      i += 2;
      continue;
    }
    const hexLength = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (hexLength > 0) {
      const hex = body.slice(i + 2, i + 2 + hexLength);
      if (!new RegExp(`^[0-9A-Fa-f]{${hexLength}}$`).test(hex)) return null;
      const value = Number.parseInt(hex, 16);
      if (e === 'x') bytes.push(value);
      else if (value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return null;
      else pushText(String.fromCodePoint(value));
      i += 2 + hexLength;
      continue;
    }
    const oct = /^[0-7]{3}/.exec(body.slice(i + 1, i + 4));
    if (oct !== null) {
      const value = Number.parseInt(oct[0], 8);
      if (value > 0xff) return null;
      bytes.push(value);
      i += 4;
      continue;
    }
    return null;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go's %q, near enough for messages. */
function goQuote(text: string): string {
  return JSON.stringify(text);
}

// ---------------------------------------------------------------------------------------------
// Selector validation against an endpoint's field names (go-bexpr v0.1.2 validate.go).

function checkSelectors(node: Node, fields: FilterFields): void {
  switch (node.kind) {
    case 'or':
    case 'and':
      for (const term of node.terms) checkSelectors(term, fields);
      return;
    case 'not':
      checkSelectors(node.operand, fields);
      return;
    case 'match': {
      let level: FilterFields | null = fields;
      for (let i = 0; i < node.path.length && level !== null; i++) {
        const name = node.path[i] as string;
        // `.N` picks a list element: the fields beneath are the element's.
        if (/^[0-9]+$/.test(name)) continue;
        if (!Object.hasOwn(level, name)) {
          throw new FilterError(
            `${errorPrefix}Selector ${goQuote(node.path.slice(0, i + 1).join('.'))} is not valid`,
          );
        }
        level = level[name] ?? null;
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

function evaluate(node: Node, item: unknown): boolean {
  switch (node.kind) {
    case 'or':
      return node.terms.some((term) => evaluate(term, item));
    case 'and':
      return node.terms.every((term) => evaluate(term, item));
    case 'not':
      return !evaluate(node.operand, item);
    case 'match':
      return walk(node, item, 0);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The result for a selector that finds nothing (go-bexpr: a missing map key). */
function absent(op: MatchOp): boolean {
  return op === 'notEqual' || op === 'notIn' || op === 'isEmpty' || op === 'notMatches';
}

function walk(node: MatchNode, value: unknown, depth: number): boolean {
  if (value === null || value === undefined) return absent(node.op);
  if (depth === node.path.length) return applyOp(node, value);
  const segment = node.path[depth] as string;
  if (Array.isArray(value)) {
    if (/^[0-9]+$/.test(segment)) {
      const index = Number(segment);
      return index < value.length ? walk(node, value[index], depth + 1) : absent(node.op);
    }
    // A list of objects in the middle of a selector: the match holds if it holds for any one.
    for (const element of value) if (element !== null && walk(node, element, depth)) return true;
    return false;
  }
  if (isPlainObject(value)) {
    return Object.hasOwn(value, segment) ? walk(node, value[segment], depth + 1) : absent(node.op);
  }
  throw new FilterError(
    `${errorPrefix}Selector ${goQuote(node.path.slice(0, depth + 1).join('.'))} is not valid`,
  );
}

function invalidOperator(node: MatchNode): FilterError {
  return new FilterError(
    `${errorPrefix}Invalid match operator ${goQuote(opNames[node.op])} for selector ${goQuote(node.path.join('.'))}`,
  );
}

function applyOp(node: MatchNode, value: unknown): boolean {
  switch (node.op) {
    case 'equal':
    case 'notEqual': {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        throw invalidOperator(node);
      }
      const equal = primitiveEquals(node, value);
      return node.op === 'equal' ? equal : !equal;
    }
    case 'in':
    case 'notIn': {
      const raw = node.value as string;
      let found: boolean;
      if (typeof value === 'string') found = value.includes(raw);
      else if (Array.isArray(value)) {
        found = value.some((element) => {
          if (element === null) return false;
          if (typeof element !== 'string' && typeof element !== 'number' && typeof element !== 'boolean') {
            throw invalidOperator(node);
          }
          return primitiveEquals(node, element);
        });
      } else if (isPlainObject(value)) found = Object.hasOwn(value, raw);
      else throw invalidOperator(node);
      return node.op === 'in' ? found : !found;
    }
    case 'isEmpty':
    case 'isNotEmpty': {
      let empty: boolean;
      if (typeof value === 'string' || Array.isArray(value)) empty = value.length === 0;
      else if (isPlainObject(value)) empty = Object.keys(value).length === 0;
      else throw invalidOperator(node);
      return node.op === 'isEmpty' ? empty : !empty;
    }
    case 'matches':
    case 'notMatches': {
      if (typeof value !== 'string') throw invalidOperator(node);
      const matched = (node.regex as GoRegex).test(value);
      return node.op === 'matches' ? matched : !matched;
    }
  }
}

/** `field == literal`, converting the literal to the field's type as go-bexpr does. */
function primitiveEquals(node: MatchNode, field: string | number | boolean): boolean {
  const raw = node.value as string;
  if (typeof field === 'string') return field === raw;
  if (typeof field === 'boolean') {
    const parsed = parseGoBool(raw);
    if (parsed === null)
      throw coerceError(node, `strconv.ParseBool: parsing ${goQuote(raw)}: invalid syntax`);
    return parsed === field;
  }
  // JSON does not say whether a number was a Go int or float: an integral value is taken as an
  // int (ParseInt), but a literal with a fraction is still compared rather than refused.
  const asInt = parseGoInt(raw);
  if (asInt !== null) return asInt === field;
  const asFloat = parseGoFloat(raw);
  if (asFloat !== null) return asFloat === field;
  const parser = Number.isInteger(field) ? 'strconv.ParseInt' : 'strconv.ParseFloat';
  throw coerceError(node, `${parser}: parsing ${goQuote(raw)}: invalid syntax`);
}

function coerceError(node: MatchNode, detail: string): FilterError {
  return new FilterError(
    `${errorPrefix}Failed to coerce value ${goQuote(node.value as string)} for selector ${goQuote(node.path.join('.'))}: ${detail}`,
  );
}

/** Go's strconv.ParseBool. */
function parseGoBool(raw: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  return null;
}

/** Go's strconv.ParseInt(raw, 0, 64): sign, 0x/0o/0b/0 prefixes, `_` between digits. */
function parseGoInt(raw: string): number | null {
  const m =
    /^([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/.exec(
      raw,
    );
  if (m === null) return null;
  const digits = (m[2] ?? '').replaceAll('_', '');
  let magnitude: bigint;
  if (/^0[oO]/.test(digits)) magnitude = BigInt(`0o${digits.slice(2)}`);
  else if (/^0[0-7]+$/.test(digits)) magnitude = BigInt(`0o${digits.slice(1)}`);
  else magnitude = BigInt(digits);
  const value = m[1] === '-' ? -magnitude : magnitude;
  if (value > 0x7fffffffffffffffn || value < -0x8000000000000000n) return null;
  return Number(value);
}

/** Go's strconv.ParseFloat(raw, 64), decimal forms plus inf/infinity/nan. */
function parseGoFloat(raw: string): number | null {
  if (/^[+-]?(inf|infinity)$/i.test(raw)) return raw.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(raw)) return Number.NaN;
  if (!/^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(raw)) return null;
  return Number(raw);
}
