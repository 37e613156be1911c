import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeArgv } from '../../src/cli/argv.js';

describe('normalizeArgv', () => {
  test('Consul-style single-dash long flags get a second dash', () => {
    assert.deepEqual(normalizeArgv(['agent', '-dev']), ['agent', '--dev']);
    assert.deepEqual(normalizeArgv(['agent', '-data-dir=/x']), ['agent', '--data-dir=/x']);
    assert.deepEqual(normalizeArgv(['agent', '-data-dir', '/x']), ['agent', '--data-dir', '/x']);
    assert.deepEqual(normalizeArgv(['agent', '-retry-join', 'a', '-retry-join', 'b']), [
      'agent',
      '--retry-join',
      'a',
      '--retry-join',
      'b',
    ]);
    assert.deepEqual(normalizeArgv(['agent', '-bootstrap-expect=3', '-log-json']), [
      'agent',
      '--bootstrap-expect=3',
      '--log-json',
    ]);
    assert.deepEqual(normalizeArgv(['-version']), ['--version']);
  });

  test('the value after = is kept verbatim, whatever it holds', () => {
    assert.deepEqual(normalizeArgv(['-http-addr=http://127.0.0.1:8500']), [
      '--http-addr=http://127.0.0.1:8500',
    ]);
    assert.deepEqual(normalizeArgv(['-node=']), ['--node=']);
    assert.deepEqual(normalizeArgv(['-node=a=b -c']), ['--node=a=b -c']);
    assert.deepEqual(normalizeArgv(['-config-file=line1\nline2']), ['--config-file=line1\nline2']);
  });

  test('double-dash flags, plain words and a lone dash are untouched', () => {
    const args = ['agent', '--dev', '--data-dir=/x', 'kv', 'get', 'foo/bar', '-', '---x'];
    assert.deepEqual(normalizeArgv(args), args);
  });

  test('single-letter flags are untouched', () => {
    assert.deepEqual(normalizeArgv(['-h']), ['-h']);
    assert.deepEqual(normalizeArgv(['kv', 'get', '-V', 'x']), ['kv', 'get', '-V', 'x']);
    assert.deepEqual(normalizeArgv(['-x=1']), ['-x=1']);
  });

  test('negative numbers are untouched', () => {
    const args = ['kv', 'put', 'k', '-5', '-1.5', '-0', '-1e3', '-42=x'];
    assert.deepEqual(normalizeArgv(args), args);
  });

  test('everything after -- is untouched, and -- itself is kept', () => {
    assert.deepEqual(normalizeArgv(['kv', 'put', '-http-addr', 'h:1', '--', '-dev', '-data-dir=/x']), [
      'kv',
      'put',
      '--http-addr',
      'h:1',
      '--',
      '-dev',
      '-data-dir=/x',
    ]);
    assert.deepEqual(normalizeArgv(['--', '--', '-dev']), ['--', '--', '-dev']);
  });

  test('the input array is not modified', () => {
    const args = Object.freeze(['agent', '-dev']);
    assert.deepEqual(normalizeArgv(args), ['agent', '--dev']);
    assert.deepEqual(args, ['agent', '-dev']);
  });

  test('empty argv', () => {
    assert.deepEqual(normalizeArgv([]), []);
  });
});
