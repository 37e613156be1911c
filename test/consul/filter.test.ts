import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  applyFilter,
  compileFilter,
  FILTER_EXPRESSION_BYTES_MAX,
  FILTER_NESTING_DEPTH_MAX,
  FilterError,
  type FilterFields,
  filterValues,
} from '../../src/api/consul/filter.js';

// Consul's ?filter= language (go-bexpr), checked against the items our endpoints answer with.

/** Entries as /v1/health/service/:name returns them. */
const healthEntries = [
  {
    Node: {
      ID: 'n1-id',
      Node: 'node-1',
      Address: '10.0.0.1',
      Datacenter: 'dc1',
      Meta: { os: 'linux', 'rack-id': 'r1' },
    },
    Service: {
      ID: 'web-1',
      Service: 'web',
      Tags: ['primary', 'v1'],
      Address: '',
      Meta: { version: '1.0.0', env: 'prod' },
      Port: 8080,
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
    },
    Checks: [
      { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceName: '' },
      { CheckID: 'service:web-1', Name: 'web health', Status: 'passing', ServiceName: 'web' },
    ],
  },
  {
    Node: { ID: 'n2-id', Node: 'node-2', Address: '10.0.0.2', Datacenter: 'dc1', Meta: { os: 'windows' } },
    Service: {
      ID: 'web-2',
      Service: 'web',
      Tags: ['secondary', 'v2', 'canary'],
      Address: '192.168.1.2',
      Meta: { version: '2.0.0' },
      Port: 9090,
      Weights: { Passing: 3, Warning: 1 },
      EnableTagOverride: true,
    },
    Checks: [
      { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceName: '' },
      { CheckID: 'service:web-2', Name: 'web health', Status: 'critical', ServiceName: 'web' },
    ],
  },
  {
    Node: { ID: 'n3-id', Node: 'node-3', Address: '10.0.0.3', Datacenter: 'dc2', Meta: null },
    Service: {
      ID: 'web-3',
      Service: 'web',
      Tags: [],
      Address: '',
      Meta: {},
      Port: 80,
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
    },
    Checks: [],
  },
];

function ids(expression: string): string[] {
  return applyFilter(healthEntries, expression).map((e) => e.Service.ID);
}

function rejects(expression: string, message: RegExp): void {
  assert.throws(
    () => compileFilter(expression),
    (err: unknown) => err instanceof FilterError && message.test(err.message),
    `expected ${JSON.stringify(expression)} to be refused with ${message}`,
  );
}

function evaluationFails(expression: string, message: RegExp): void {
  assert.throws(
    () => ids(expression),
    (err: unknown) => err instanceof FilterError && message.test(err.message),
    `expected ${JSON.stringify(expression)} to fail evaluation with ${message}`,
  );
}

describe('matching operators', () => {
  test('== and != on strings, with quoted, backtick and bare values', () => {
    assert.deepEqual(ids('Node.Node == "node-1"'), ['web-1']);
    assert.deepEqual(ids('Node.Node == `node-2`'), ['web-2']);
    assert.deepEqual(ids('Node.Datacenter == dc2'), ['web-3']);
    assert.deepEqual(ids('Node.Datacenter != dc1'), ['web-3']);
    assert.deepEqual(ids('Node.Node=="node-1"'), ['web-1'], 'whitespace around == is optional');
  });

  test('== on numbers converts the literal to the field type', () => {
    assert.deepEqual(ids('Service.Port == 8080'), ['web-1']);
    assert.deepEqual(ids('Service.Port == "9090"'), ['web-2']);
    assert.deepEqual(ids('Service.Port == "0x50"'), ['web-3'], 'Go ParseInt base prefixes');
    assert.deepEqual(ids('Service.Weights.Passing != 1'), ['web-2']);
    assert.deepEqual(ids('Service.Port == -1'), []);
    assert.deepEqual(ids('Service.Port == 80.0'), ['web-3'], 'a fractional literal still compares');
  });

  test('== on booleans takes every spelling of Go ParseBool', () => {
    assert.deepEqual(ids('Service.EnableTagOverride == true'), ['web-2']);
    assert.deepEqual(ids('Service.EnableTagOverride == T'), ['web-2']);
    assert.deepEqual(ids('Service.EnableTagOverride == "1"'), ['web-2']);
    assert.deepEqual(ids('Service.EnableTagOverride == False'), ['web-1', 'web-3']);
    assert.deepEqual(ids('Service.EnableTagOverride != 0'), ['web-2']);
  });

  test('in / contains: list element, map key, substring', () => {
    assert.deepEqual(ids('Service.Tags contains primary'), ['web-1']);
    assert.deepEqual(ids('"canary" in Service.Tags'), ['web-2']);
    assert.deepEqual(ids('canary not in Service.Tags'), ['web-1', 'web-3']);
    assert.deepEqual(ids('Service.Tags not contains "v1"'), ['web-2', 'web-3']);
    assert.deepEqual(ids('env in Service.Meta'), ['web-1'], 'map: key presence');
    assert.deepEqual(ids('Service.Meta contains version'), ['web-1', 'web-2']);
    assert.deepEqual(ids('"192.168" in Service.Address'), ['web-2'], 'string: substring');
    assert.deepEqual(ids('Node.Node contains "-2"'), ['web-2']);
  });

  test('is empty / is not empty on lists, maps and strings', () => {
    assert.deepEqual(ids('Service.Tags is empty'), ['web-3']);
    assert.deepEqual(ids('Service.Tags is not empty'), ['web-1', 'web-2']);
    assert.deepEqual(ids('Service.Meta is empty'), ['web-3']);
    assert.deepEqual(ids('Service.Address is empty'), ['web-1', 'web-3']);
    assert.deepEqual(ids('Checks is empty'), ['web-3']);
    assert.deepEqual(ids('Node.Meta is empty'), ['web-3'], 'null is a nil map: empty');
  });

  test('matches / not matches use Go regular expressions', () => {
    assert.deepEqual(ids('Service.Meta.version matches "^1\\\\."'), ['web-1']);
    assert.deepEqual(ids('Service.Meta.version matches `^[12]\\.0`'), ['web-1', 'web-2']);
    assert.deepEqual(ids('Node.Address not matches `\\.[12]$`'), ['web-3']);
    assert.deepEqual(ids('Node.Node matches `(?i)^NODE-[[:digit:]]$`'), ['web-1', 'web-2', 'web-3']);
    assert.deepEqual(ids('Node.Node matches `\\Anode-1\\z`'), ['web-1']);
    assert.deepEqual(ids('Node.Node matches `^(?P<name>node)-\\d{1,2}$`'), ['web-1', 'web-2', 'web-3']);
  });
});

describe('selectors', () => {
  test('map keys by dot, by index expression and by JSON Pointer', () => {
    assert.deepEqual(ids('Node.Meta.os == linux'), ['web-1']);
    assert.deepEqual(ids('Node.Meta["rack-id"] == r1'), ['web-1']);
    assert.deepEqual(ids('Node.Meta[ `rack-id` ] == r1'), ['web-1']);
    assert.deepEqual(ids('"/Node/Meta/rack-id" == r1'), ['web-1']);
    assert.deepEqual(ids('"/Service/Tags" contains canary'), ['web-2']);
  });

  test('through a list of objects a match holds if it holds for any element', () => {
    assert.deepEqual(ids('Checks.Status == critical'), ['web-2']);
    assert.deepEqual(ids('Checks.Status == passing'), ['web-1', 'web-2']);
    // The operator is applied per element: "some check is not passing"; an empty list matches nothing.
    assert.deepEqual(ids('Checks.Status != passing'), ['web-2']);
    assert.deepEqual(ids('not Checks.Status != passing'), ['web-1', 'web-3']);
    assert.deepEqual(ids('Checks.ServiceName is empty'), ['web-1', 'web-2']);
    assert.deepEqual(ids('Checks.CheckID contains "web-2"'), ['web-2']);
  });

  test('.N picks a list element', () => {
    assert.deepEqual(ids('Checks.1.Status == critical'), ['web-2']);
    assert.deepEqual(ids('Service.Tags.0 == primary'), ['web-1']);
    assert.deepEqual(ids('"/Checks/1/Status" == passing'), ['web-1']);
  });

  test('a missing key is absent: only the negative operators and is empty hold', () => {
    assert.deepEqual(ids('Service.Meta.env == prod'), ['web-1']);
    assert.deepEqual(ids('Service.Meta.env != prod'), ['web-2', 'web-3']);
    assert.deepEqual(ids('Service.Meta.env is empty'), ['web-2', 'web-3']);
    assert.deepEqual(ids('Service.Meta.env is not empty'), ['web-1']);
    assert.deepEqual(ids('x in Service.Meta.env'), []);
    assert.deepEqual(ids('x not in Service.Meta.env'), ['web-1', 'web-2', 'web-3']);
    assert.deepEqual(ids('Service.Meta.env matches ".*"'), ['web-1']);
    assert.deepEqual(ids('Service.Meta.env not matches "p"'), ['web-2', 'web-3']);
    assert.deepEqual(ids('Node.Meta.os == linux'), ['web-1'], 'through null');
    assert.deepEqual(ids('Bogus == 1'), [], 'unknown top-level field, no fields given');
  });

  test('prototype keys are never found', () => {
    assert.deepEqual(ids('Service.Meta.constructor is empty'), ['web-1', 'web-2', 'web-3']);
    assert.deepEqual(ids('Service.Meta["__proto__"] is not empty'), []);
    assert.deepEqual(ids('toString in Service.Meta'), []);
  });

  test('with fields, an unknown selector fails compilation as in Consul', () => {
    const fields: FilterFields = {
      Node: { ID: null, Node: null, Address: null, Datacenter: null, Meta: null },
      Service: { ID: null, Service: null, Tags: null, Address: null, Meta: null, Port: null, Weights: null },
      Checks: { CheckID: null, Name: null, Status: null, ServiceName: null },
    };
    assert.throws(
      () => compileFilter('Service.Bogus == 1', { fields }),
      new FilterError('Failed to create boolean expression evaluator: Selector "Service.Bogus" is not valid'),
    );
    assert.throws(() => compileFilter('Nope is empty', { fields }), /Selector "Nope" is not valid/);
    const ok = compileFilter('Service.Meta.anything == x or Checks.Status == passing or Checks.0.Name == y', {
      fields,
    });
    assert.equal(ok(healthEntries[0]), true);
    assert.deepEqual(applyFilter(healthEntries, 'Node.Meta.os == linux', { fields }).length, 1);
  });
});

describe('logic', () => {
  test('and, or, not and parentheses', () => {
    assert.deepEqual(ids('Service.Port == 8080 or Service.Port == 80'), ['web-1', 'web-3']);
    assert.deepEqual(ids('Node.Datacenter == dc1 and Service.Tags contains v2'), ['web-2']);
    assert.deepEqual(ids('not Node.Datacenter == dc1'), ['web-3']);
    assert.deepEqual(ids('not not Node.Datacenter == dc1'), ['web-1', 'web-2']);
    assert.deepEqual(ids('( Service.Port == 8080 )'), ['web-1']);
    assert.deepEqual(ids('not (Service.Port == 8080 or Service.Port == 80)'), ['web-2']);
  });

  test('precedence is not > and > or, as the docs show', () => {
    // "<E1> and not <E2> or <E3>" is "(<E1> and (not <E2>)) or <E3>".
    const a = 'Node.Datacenter == dc1';
    const b = 'Service.Tags contains canary';
    const c = 'Service.Port == 80';
    assert.deepEqual(ids(`${a} and not ${b} or ${c}`), ids(`(${a} and (not ${b})) or ${c}`));
    assert.deepEqual(ids(`${a} and not ${b} or ${c}`), ['web-1', 'web-3']);
    assert.deepEqual(ids(`${c} or ${a} and ${b}`), ['web-2', 'web-3']);
  });

  test('word operators need whitespace where go-bexpr does', () => {
    rejects('not(Service.Port == 80)', /1:4 \(3\): no match found/);
    rejects('(Service.Port == 80)and(Service.Port == 80)', /no match found/);
    rejects('Service.Tags contains"x"', /no match found/);
    rejects('"x"in Service.Tags', /no match found/);
    assert.deepEqual(ids('\n\tService.Port\n==\n80\r\n'), ['web-3']);
  });

  test('keywords are still usable as bare values', () => {
    assert.deepEqual(ids('Service.Tags contains and'), []);
    assert.deepEqual(ids('Service.Service != not'), ['web-1', 'web-2', 'web-3']);
    assert.deepEqual(ids('Service.Service == web and Service.Port == 80'), ['web-3']);
  });
});

describe('values', () => {
  test('bare selectors as values use their dotted text', () => {
    const item = { A: 'x.y', B: 'q.r' };
    assert.equal(compileFilter('A == x.y')(item), true);
    assert.equal(compileFilter('B == q["r"]')(item), true);
  });

  test('double-quoted strings take Go escapes; backticks are raw', () => {
    const item = { S: 'a\tb', R: 'a\\tb', U: 'é', N: 'x' };
    assert.equal(compileFilter('S == "a\\tb"')(item), true);
    assert.equal(compileFilter('R == `a\\tb`')(item), true);
    assert.equal(compileFilter('U == "\\u00e9"')(item), true);
    assert.equal(compileFilter('U == "\\xc3\\xa9"')(item), true, 'hex escapes are bytes');
    assert.equal(compileFilter('N == "\\170"')(item), true, 'octal');
    rejects('S == "a\\qb"', /rule "string": invalid syntax/);
    rejects('S == "a\\"b"', /rule "string": invalid syntax/);
  });

  test('numbers: decimal integers and floats, followed by space, ) or the end', () => {
    assert.equal(compileFilter('(P == 1.5)')({ P: 1.5 }), true);
    assert.equal(compileFilter('P == -3')({ P: -3 }), true);
    assert.equal(compileFilter('P == 0')({ P: 0 }), true);
    rejects('P == 01', /rule "number": Invalid number literal/);
    rejects('P == 1.', /rule "number": Invalid number literal/);
    rejects('P == 1e3', /rule "number": Invalid number literal/);
  });

  test('a literal that cannot take the field type is an error', () => {
    evaluationFails(
      'Service.Port == abc',
      /^Failed to create boolean expression evaluator: Failed to coerce value "abc" for selector "Service.Port": strconv.ParseInt: parsing "abc": invalid syntax$/,
    );
    evaluationFails('Service.EnableTagOverride == yes', /strconv.ParseBool: parsing "yes": invalid syntax/);
    evaluationFails('Service.Tags contains 1.5x', /Invalid number literal/);
  });
});

describe('errors read like Consul', () => {
  test('syntax errors carry pigeon positions and expectations', () => {
    // Both messages as Consul users have reported them.
    assert.throws(
      () => compileFilter('foo'),
      new FilterError(
        'Failed to create boolean expression evaluator: 1:4 (3): no match found, expected: "!=", ".", "==", "[", [ \\t\\r\\n] or [a-zA-Z0-9_]',
      ),
    );
    assert.throws(
      () => compileFilter('Address == 10.10.10.10 '),
      new FilterError(
        'Failed to create boolean expression evaluator: 1:17 (16): rule "number": Invalid number literal',
      ),
    );
    rejects('Node==host-name', /1:11 \(10\): no match found, expected: .*EOF/);
    rejects('(Service.Port == 80', /1:20 \(19\): rule "grouping": Unmatched parentheses/);
    rejects('Service.Service == "web', /rule "string": Unterminated string literal/);
    rejects('Meta[x] == 1', /rule "index": Invalid index/);
    rejects('Meta["x" == 1', /rule "index": Unclosed index expression/);
    rejects('"x" in 5', /rule "match": Invalid selector/);
    rejects('', /1:1 \(0\): no match found/);
    rejects('Service.Port ==', /no match found/);
    rejects('Service.Port == 1 and', /no match found/);
    rejects('Service.Tags is', /no match found/);
    rejects('Service.Port === 1', /no match found/);
  });

  test('positions count lines, characters and bytes', () => {
    rejects('Service.Port == 1 and\né == 2', /2:1 \(22\): no match found/);
    rejects('X == "é" and é', /1:14 \(14\): no match found/);
  });

  test('an operator the value type cannot take is an error', () => {
    evaluationFails('Service.Tags == x', /Invalid match operator "Equal" for selector "Service.Tags"/);
    evaluationFails('Service.Port is empty', /Invalid match operator "Is Empty" for selector "Service.Port"/);
    evaluationFails('Service.Port contains 8', /Invalid match operator "In" for selector "Service.Port"/);
    evaluationFails('Service.Meta matches x', /Invalid match operator "Matches" for selector "Service.Meta"/);
    evaluationFails('Service == web', /Invalid match operator "Equal" for selector "Service"/);
    evaluationFails('x in Checks', /Invalid match operator "In" for selector "Checks"/);
    evaluationFails('Service.Port.Foo == 1', /Selector "Service.Port.Foo" is not valid/);
  });
});

describe('hostile input', () => {
  test('the expression length is bounded', () => {
    const atLimit = `A == "${'x'.repeat(FILTER_EXPRESSION_BYTES_MAX - 7)}"`;
    assert.equal(Buffer.byteLength(atLimit), FILTER_EXPRESSION_BYTES_MAX);
    compileFilter(atLimit);
    rejects(`${atLimit} `, /expression is 4097 bytes long, more than the limit of 4096/);
    rejects(`A == "${'é'.repeat(2100)}"`, /bytes long, more than the limit/);
  });

  test('nesting is bounded', () => {
    const nest = (n: number) => `${'('.repeat(n)}A == 1${')'.repeat(n)}`;
    assert.equal(compileFilter(nest(FILTER_NESTING_DEPTH_MAX))({ A: 1 }), true);
    rejects(nest(FILTER_NESTING_DEPTH_MAX + 1), /nests deeper than 32 levels/);
    rejects(`${'not '.repeat(FILTER_NESTING_DEPTH_MAX + 1)}A == 1`, /nests deeper than 32 levels/);
    rejects('('.repeat(2000), /nests deeper/);
    // Long flat chains are fine: they are parsed and evaluated without recursion.
    const chain = Array.from({ length: 300 }, (_, i) => `A == ${i}`).join(' or ');
    assert.equal(compileFilter(chain)({ A: 299 }), true);
  });

  test('regular expressions are matched in linear time, whatever the pattern', () => {
    const long = `${'a'.repeat(4000)}!`;
    for (const pattern of [
      '^(a+)+$',
      '^(a|a)*$',
      '^(a*)*$',
      '.*.*.*.*x',
      'a*a*a*a*a*a*a*a*b',
      '((a?){20}){20}b',
    ]) {
      const started = performance.now();
      assert.equal(compileFilter(`A matches "${pattern}"`)({ A: long }), false, pattern);
      assert.ok(performance.now() - started < 2000, `${pattern} took ${performance.now() - started} ms`);
    }
  });

  test('regular expressions Go refuses are refused', () => {
    rejects('A matches `(a)\\1`', /Failed to compile regular expression "\(a\)\\\\1": .*backreferences/);
    rejects('A matches `a(?=b)`', /invalid or unsupported Perl syntax: `\(\?=`/);
    rejects('A matches `(?<!a)b`', /invalid or unsupported Perl syntax: `\(\?<!`/);
    rejects('A matches `(`', /missing closing \)/);
    rejects('A matches `)`', /unexpected \)/);
    rejects('A matches `*a`', /missing argument to repetition operator/);
    rejects('A matches `a**`', /invalid nested repetition operator/);
    rejects('A matches `a{1001}`', /invalid repeat count/);
    rejects('A matches `a{2,1}`', /invalid repeat count/);
    rejects('A matches `[z-a]`', /Failed to compile regular expression/);
    rejects('A matches `[a`', /missing closing \]/);
    rejects('A matches `\\`', /trailing backslash/);
    rejects('A matches `\\8`', /invalid escape sequence/);
    rejects('A matches `(?z)`', /invalid or unsupported Perl syntax/);
    rejects('A matches `(a{1000}){1000}`', /expression too large/);
    rejects(`A matches "${'('.repeat(101)}a${')'.repeat(101)}"`, /nests too deeply/);
  });

  test('Go regular expression syntax', () => {
    const m = (pattern: string, text: string) =>
      compileFilter(`A matches ${JSON.stringify(pattern)}`)({ A: text });
    assert.equal(m('^(ab?)+$', 'abaab'), true);
    assert.equal(m('^(foo|bar)+$', 'foobarfoo'), true);
    assert.equal(m('^(foo|bar)+$', 'foobaz'), false);
    assert.equal(m('^a{2,3}$', 'aaa'), true);
    assert.equal(m('^a{2,3}$', 'aaaa'), false);
    assert.equal(m('^a{2,}$', 'aaaaa'), true);
    assert.equal(m('^a{2}$', 'a'), false);
    assert.equal(m('^a{0}b$', 'b'), true);
    assert.equal(m('^{x}$', '{x}'), true, 'a brace that starts no repeat is literal');
    assert.equal(m('^[]a]+$', ']a]'), true, '] first in a class is literal');
    assert.equal(m('^[^]a]$', 'b'), true);
    assert.equal(m('^\\Q.*\\E$', '.*'), true);
    assert.equal(m('^\\pL+$', 'héllo'), true);
    assert.equal(m('^\\p{Greek}+$', 'αβγ'), true);
    assert.equal(m('^\\PL$', '1'), true);
    assert.equal(m('^[[:alpha:]_]+$', 'ab_c'), true);
    assert.equal(m('^[[:digit:]]+$', '12a'), false);
    assert.equal(m('^\\s$', '\u00a0'), false, 'Go \\s is ASCII');
    assert.equal(m('^\\s$', '\t'), true);
    assert.equal(m('^\\d+\\.\\d+$', '10.25'), true);
    assert.equal(m('^\\x41\\x{263a}\\101$', 'A☺A'), true);
    assert.equal(m('\\bweb\\b', 'my web-1'), true);
    assert.equal(m('\\bweb\\b', 'myweb'), false);
    assert.equal(m('\\Bweb', 'myweb'), true);
    assert.equal(m('(?i)^WEB$', 'web'), true);
    assert.equal(m('^(?i:W)EB$', 'wEB'), true);
    assert.equal(m('^(?i:W)EB$', 'web'), false, 'the flag ends with its group');
    assert.equal(m('^a(?i)b$', 'aB'), true);
    assert.equal(m('^(?i)[a-c]+$', 'AbC'), true);
    assert.equal(m('^a.b$', 'a\nb'), false);
    assert.equal(m('(?s)^a.b$', 'a\nb'), true);
    assert.equal(m('^b$', 'a\nb'), false);
    assert.equal(m('(?m)^b$', 'a\nb'), true);
    assert.equal(m('\\Ab', 'a\nb'), false);
    assert.equal(m('(?m)a$', 'a\nb'), true);
    assert.equal(m('(?m)a\\z', 'a\nb'), false);
    assert.equal(m('^(?P<x>a)(?<y>b)$', 'ab'), true);
    assert.equal(m('^😀+$', '😀😀'), true, 'a repeated astral character is one character');
    assert.equal(m('^.$', '😀'), true);
    assert.equal(m('(?U)a+', 'aa'), true);
    assert.equal(m('a+?b', 'aab'), true);
    assert.equal(m('', 'anything'), true);
    assert.equal(m('x|', 'y'), true, 'an empty alternative matches');
    assert.equal(m('(|a)+b', 'aab'), true);
  });

  test('our matcher agrees with RegExp on the syntax both share', () => {
    const piece = fc.constantFrom(
      'a',
      'b',
      '.',
      '[ab]',
      '[^a]',
      '^',
      '$',
      '\\b',
      'a*',
      'b+',
      '.?',
      '(a|b)',
      '(ab)*',
      'a{1,2}',
      '(a|)+',
      '\\.',
    );
    const patterns = fc.array(piece, { maxLength: 6 }).chain((parts) =>
      fc.oneof(
        fc.constant(parts.join('')),
        fc.array(piece, { maxLength: 4 }).map((more) => `${parts.join('')}|${more.join('')}`),
      ),
    );
    const texts = fc
      .array(fc.constantFrom('a', 'b', '.', '\n', ' '), { maxLength: 10 })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(patterns, texts, (pattern, text) => {
        const ours = compileFilter(`A matches ${JSON.stringify(pattern)}`)({ A: text });
        assert.equal(ours, new RegExp(pattern, 'u').test(text), `${pattern} on ${JSON.stringify(text)}`);
      }),
      { numRuns: 3000 },
    );
  });

  test('random input never escapes as anything but FilterError', () => {
    const alphabet = fc.constantFrom(
      ...'abAZ09_.[]()"`\\/ \t\n=!-~é'.split(''),
      ' and ',
      ' or ',
      'not ',
      ' in ',
      ' contains ',
      ' matches ',
      ' is empty',
      ' is not empty',
      '==',
      '!=',
      'Service.Tags',
      'Checks.Status',
    );
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (parts) => {
        const expression = parts.join('');
        try {
          const matches = compileFilter(expression);
          for (const entry of healthEntries) {
            try {
              assert.equal(typeof matches(entry), 'boolean');
            } catch (err) {
              if (!(err instanceof FilterError)) throw err;
            }
          }
        } catch (err) {
          if (!(err instanceof FilterError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('properties of the logic', () => {
  // Atoms that never error on the fixture, including ones through lists and missing keys.
  const atoms = [
    'Node.Datacenter == dc1',
    'Service.Port == 8080',
    'Service.Tags contains v2',
    'Service.Meta.env is empty',
    'Checks.Status == critical',
    'Node.Meta.os != linux',
    'Service.Address matches "^192"',
    'v1 not in Service.Tags',
  ];
  type Expr = { text: string; value: (i: number) => boolean };
  const truth = (text: string) => (i: number) => compileFilter(text)(healthEntries[i]);
  const exprArb: fc.Arbitrary<Expr> = fc.letrec<{ expr: Expr }>((tie) => ({
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom(...atoms).map((text) => ({ text, value: truth(text) })),
      tie('expr').map((e) => ({ text: `not (${e.text})`, value: (i: number) => !e.value(i) })),
      fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => ({
        text: `(${a.text}) and (${b.text})`,
        value: (i: number) => a.value(i) && b.value(i),
      })),
      fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => ({
        text: `(${a.text}) or (${b.text})`,
        value: (i: number) => a.value(i) || b.value(i),
      })),
    ),
  })).expr;

  test('not, and, or compose as boolean logic', () => {
    fc.assert(
      fc.property(exprArb, fc.integer({ min: 0, max: healthEntries.length - 1 }), (expr, i) => {
        assert.equal(compileFilter(expr.text)(healthEntries[i]), expr.value(i), expr.text);
      }),
      { numRuns: 300 },
    );
  });

  test('off lists, each negated operator is the negation of its positive', () => {
    const pairs: Array<[string, string]> = [
      ['Service.Service == VALUE', 'Service.Service != VALUE'],
      ['VALUE in Service.Tags', 'VALUE not in Service.Tags'],
      ['Service.Meta contains VALUE', 'Service.Meta not contains VALUE'],
      ['Service.Meta.VALUE is empty', 'Service.Meta.VALUE is not empty'],
      ['Node.Node matches VALUE', 'Node.Node not matches VALUE'],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...pairs),
        fc.constantFrom('web', 'env', 'version', 'v1', 'canary', 'node', 'x'),
        fc.integer({ min: 0, max: healthEntries.length - 1 }),
        ([positive, negative], value, i) => {
          const item = healthEntries[i];
          assert.equal(
            compileFilter(negative.replace('VALUE', value))(item),
            !compileFilter(positive.replace('VALUE', value))(item),
          );
        },
      ),
    );
  });
});

describe('applyFilter and filterValues', () => {
  test('an absent or empty expression filters nothing', () => {
    assert.equal(applyFilter(healthEntries, undefined), healthEntries);
    assert.equal(applyFilter(healthEntries, ''), healthEntries);
    assert.throws(() => applyFilter(healthEntries, ' '), FilterError);
  });

  test('a bad expression fails even when there is nothing to filter', () => {
    assert.throws(() => applyFilter([], 'Service.Port =='), FilterError);
  });

  test('filterValues keeps the keys of a map-shaped answer (/v1/agent/services)', () => {
    const services = {
      'redis-1': { ID: 'redis-1', Service: 'redis', Tags: ['primary'], Meta: { env: 'qa' }, Port: 6379 },
      'redis-2': { ID: 'redis-2', Service: 'redis', Tags: ['replica'], Meta: { env: 'prod' }, Port: 6380 },
      web: { ID: 'web', Service: 'web', Tags: [], Meta: {}, Port: 80 },
    };
    assert.deepEqual(Object.keys(filterValues(services, 'Meta.env == qa')), ['redis-1']);
    assert.deepEqual(Object.keys(filterValues(services, 'Service == redis and Port != 6379')), ['redis-2']);
    assert.deepEqual(Object.keys(filterValues(services, 'Tags is empty')), ['web']);
    assert.deepEqual(filterValues(services, undefined), services);
  });

  test('catalog nodes (/v1/catalog/nodes)', () => {
    const nodes = [
      {
        ID: 'a',
        Node: 'agent-one',
        Address: '127.0.0.1',
        Datacenter: 'dc1',
        TaggedAddresses: { lan: '127.0.0.1' },
        Meta: { 'consul-network-segment': '' },
      },
      { ID: 'b', Node: 'agent-two', Address: '127.0.0.2', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} },
    ];
    assert.deepEqual(
      applyFilter(nodes, 'Meta["consul-network-segment"] is empty and lan in TaggedAddresses').map(
        (n) => n.ID,
      ),
      ['a'],
    );
    assert.deepEqual(
      applyFilter(nodes, 'Node matches "two$" or Address == "127.0.0.9"').map((n) => n.ID),
      ['b'],
    );
  });
});
