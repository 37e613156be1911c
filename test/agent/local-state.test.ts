import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type LocalCheck,
  LocalState,
  type LocalStateOptions,
  NODE_MAINTENANCE_ID,
  serviceMaintenanceId,
} from '../../src/agent/local/local-state.js';
import { HttpError } from '../../src/api/consul/errors.js';
import { silentLogger } from '../../src/server/logger.js';
import { eventually, RecordingLogger, tempDir } from './helpers.js';

// The agent's local services and checks (Consul's agent/local.State plus the agent's check
// bookkeeping): registration semantics, TTLs, script checks, the critical-service reaper and
// persistence in the data dir.

const states: LocalState[] = [];
after(() => {
  for (const s of states) s.stop();
});

function makeState(options: Partial<LocalStateOptions> = {}): LocalState {
  const state = new LocalState({
    nodeName: 'node-1',
    dataDir: null,
    enableScriptChecks: false,
    enableLocalScriptChecks: false,
    deps: { aliasSource: () => null },
    log: silentLogger,
    ...options,
  });
  states.push(state);
  return state;
}

function check(state: LocalState, id: string): LocalCheck {
  const c = state.checks.get(id);
  assert.ok(c, `check ${id} exists`);
  return c;
}

function isHttpError(status: number, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof HttpError, `expected an HttpError, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.match(err.message, message);
    return true;
  };
}

describe('services and checks', () => {
  test('registering a service registers its checks; deregistering removes them', () => {
    const state = makeState();
    const changes: string[] = [];
    state.onChange = (kind) => changes.push(kind);
    state.addService({ Name: 'web', ID: 'web-1', Checks: [{ TTL: '30s' }, { TTL: '30s' }] }, 'api');
    assert.deepEqual([...state.checks.keys()].sort(), ['service:web-1:1', 'service:web-1:2']);
    assert.equal(check(state, 'service:web-1:1').status, 'critical');
    assert.deepEqual(changes, ['service']);
    assert.equal(state.removeService('web-1'), true);
    assert.equal(state.checks.size, 0);
    assert.equal(state.removeService('web-1'), false);
  });

  test('replace-existing-checks drops checks the new definition does not name', () => {
    const state = makeState();
    state.addService(
      {
        Name: 'web',
        Checks: [
          { CheckID: 'a', Name: 'a', TTL: '30s' },
          { CheckID: 'b', Name: 'b', TTL: '30s' },
        ],
      },
      'api',
    );
    state.addCheck({ CheckID: 'extra', Name: 'extra', TTL: '30s', ServiceID: 'web' }, 'api');
    state.setServiceMaintenance('web', true, '');

    // Without the flag, re-registering keeps checks it does not mention (Consul's default).
    state.addService({ Name: 'web', Checks: [{ CheckID: 'a', Name: 'a', TTL: '30s' }] }, 'api');
    assert.deepEqual([...state.checks.keys()].sort(), ['_service_maintenance:web', 'a', 'b', 'extra']);

    state.addService({ Name: 'web', Checks: [{ CheckID: 'a', Name: 'a', TTL: '30s' }] }, 'api', true);
    assert.deepEqual(
      [...state.checks.keys()].sort(),
      ['_service_maintenance:web', 'a'],
      'b and extra are gone; maintenance is not a registered check and stays',
    );
  });

  test('re-registering keeps a check status and output', () => {
    const state = makeState();
    state.addService({ Name: 'web', Check: { TTL: '30s' } }, 'api');
    state.updateTtl('service:web', 'passing', 'all fine');
    state.addService({ Name: 'web', Tags: ['v2'], Check: { TTL: '30s', Notes: 'new notes' } }, 'api');
    const c = check(state, 'service:web');
    assert.equal(c.status, 'passing');
    assert.equal(c.output, 'all fine');
    assert.equal(c.def.notes, 'new notes', 'the definition itself is replaced');
    assert.deepEqual(state.services.get('web')?.service.tags, ['v2']);
  });

  test('a check for an unknown service is refused; TTL updates only for TTL checks', () => {
    const state = makeState();
    assert.throws(
      () => state.addCheck({ Name: 'x', TTL: '1s', ServiceID: 'nope' }, 'api'),
      isHttpError(400, /ServiceID "nope" does not exist/),
    );
    assert.throws(() => state.updateTtl('nope', 'passing', ''), isHttpError(404, /Unknown check ID "nope"/));
    state.addCheck({ Name: 'alias', AliasService: 'x' }, 'api');
    assert.throws(
      () => state.updateTtl('alias', 'passing', ''),
      isHttpError(500, /does not have associated TTL/),
    );
  });

  test('a TTL update is cut to the output limit', () => {
    const state = makeState();
    state.addCheck({ Name: 'ttl', TTL: '30s' }, 'api');
    state.updateTtl('ttl', 'warning', 'z'.repeat(5000));
    const c = check(state, 'ttl');
    assert.equal(c.status, 'warning');
    assert.equal(c.output, `${'z'.repeat(4096)} ... (captured 4096 of 5000 bytes)`);
  });

  test('node and service maintenance are critical checks that come and go', () => {
    const state = makeState();
    state.addService({ Name: 'web' }, 'api');
    state.setNodeMaintenance(true, 'patching');
    state.setServiceMaintenance('web', true, '');
    const node = check(state, NODE_MAINTENANCE_ID);
    assert.equal(node.status, 'critical');
    assert.equal(node.def.notes, 'patching');
    const service = check(state, serviceMaintenanceId('web'));
    assert.equal(service.def.serviceId, 'web');
    assert.match(service.def.notes, /no reason was provided/);
    assert.throws(
      () => state.setServiceMaintenance('nope', true, ''),
      isHttpError(404, /Unknown service ID/),
    );
    state.setNodeMaintenance(false, '');
    state.setServiceMaintenance('web', false, '');
    assert.equal(state.checks.size, 0);
  });
});

describe('TTL checks', () => {
  test('expiry turns the check critical with the last output', async () => {
    const state = makeState();
    state.addCheck({ Name: 'ttl', TTL: '300ms' }, 'api');
    state.updateTtl('ttl', 'passing', 'last words');
    assert.equal(check(state, 'ttl').status, 'passing');
    const c = await eventually(
      'TTL expiry',
      () => check(state, 'ttl').status === 'critical' && check(state, 'ttl'),
    );
    assert.equal(c.output, 'TTL expired (last output before timeout follows): last words');
  });

  test('expiry with no output before it says only "TTL expired"', async () => {
    const state = makeState();
    state.addCheck({ Name: 'ttl', TTL: '300ms', Status: 'passing' }, 'api');
    const c = await eventually(
      'TTL expiry',
      () => check(state, 'ttl').status === 'critical' && check(state, 'ttl'),
    );
    assert.equal(c.output, 'TTL expired');
  });

  test('each update restarts the TTL', async () => {
    const state = makeState();
    state.addCheck({ Name: 'ttl', TTL: '600ms' }, 'api');
    for (let i = 0; i < 6; i++) {
      state.updateTtl('ttl', 'passing', `beat ${i}`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(check(state, 'ttl').status, 'passing', `still passing after beat ${i}`);
    }
  });
});

describe('DeregisterCriticalServiceAfter', () => {
  test('a service whose check stays critical that long is removed', async () => {
    const state = makeState();
    state.start();
    const changes: string[] = [];
    state.onChange = (kind) => changes.push(kind);
    state.addService({ Name: 'doomed', Check: { TTL: '30s', DeregisterCriticalServiceAfter: '1s' } }, 'api');
    state.addService({ Name: 'fine', Check: { TTL: '30s', DeregisterCriticalServiceAfter: '1s' } }, 'api');
    state.updateTtl('service:fine', 'passing', '');
    await eventually('the critical service to be reaped', () => !state.services.has('doomed'), 6000);
    assert.equal(state.checks.has('service:doomed'), false);
    assert.ok(state.services.has('fine'), 'a passing service stays');
    assert.ok(changes.filter((k) => k === 'service').length >= 3, 'the removal was announced');
  });

  test('turning passing in time resets the clock', async () => {
    const state = makeState();
    state.start();
    state.addService(
      { Name: 'flappy', Check: { TTL: '30s', DeregisterCriticalServiceAfter: '1500ms' } },
      'api',
    );
    await new Promise((r) => setTimeout(r, 900));
    state.updateTtl('service:flappy', 'passing', '');
    state.updateTtl('service:flappy', 'critical', '');
    await new Promise((r) => setTimeout(r, 900));
    assert.ok(state.services.has('flappy'), 'critical for 0.9 s only since the last passing');
    await eventually('the service to be reaped', () => !state.services.has('flappy'), 6000);
  });
});

describe('script checks', () => {
  test('refused unless enabled; config-file ones allowed by enableLocalScriptChecks', () => {
    const script = { Name: 's', Args: ['/bin/true'], Interval: '10s' };
    const disabled = /Scripts are disabled on this agent/;
    const none = makeState();
    assert.throws(() => none.addCheck(script, 'api'), isHttpError(400, disabled));
    assert.throws(() => none.addCheck(script, 'config'), isHttpError(400, disabled));
    assert.throws(() => none.addService({ Name: 'web', Check: script }, 'api'), isHttpError(400, disabled));
    assert.equal(none.services.size, 0, 'a refused service is not half-registered');

    const local = makeState({ enableLocalScriptChecks: true });
    assert.throws(() => local.addCheck(script, 'api'), isHttpError(400, disabled));
    local.addCheck(script, 'config');
    local.addService({ Name: 'web', Check: script }, 'config');

    const all = makeState({ enableScriptChecks: true });
    all.addCheck(script, 'api');
    all.addCheck({ ...script, Name: 's2' }, 'config');
  });

  const scripts = () => makeState({ enableScriptChecks: true });
  /** Waits for a script check's first result (its output is '' until then). */
  const firstResult = (state: LocalState, id: string) =>
    eventually(`a result from ${id}`, () => check(state, id).output !== '' && check(state, id), 8000);

  test('exit 0 passing, 1 warning, 2 critical, with the output captured', async () => {
    const state = scripts();
    state.addCheck({ Name: 'zero', Args: ['sh', '-c', 'echo fine; exit 0'], Interval: '1s' }, 'api');
    state.addCheck({ Name: 'one', Args: ['sh', '-c', 'echo meh >&2; exit 1'], Interval: '1s' }, 'api');
    state.addCheck({ Name: 'two', Args: ['sh', '-c', 'echo bad; exit 2'], Interval: '1s' }, 'api');
    const zero = await firstResult(state, 'zero');
    const one = await firstResult(state, 'one');
    const two = await firstResult(state, 'two');
    assert.deepEqual([zero.status, zero.output], ['passing', 'fine\n']);
    assert.deepEqual([one.status, one.output], ['warning', 'meh\n']);
    assert.deepEqual([two.status, two.output], ['critical', 'bad\n']);
  });

  test('output is cut to 4096 bytes with "... (captured N of M bytes)"', async () => {
    const state = scripts();
    state.addCheck(
      {
        Name: 'loud',
        Args: [process.execPath, '-e', "process.stdout.write('q'.repeat(100000))"],
        Interval: '1s',
      },
      'api',
    );
    const c = await firstResult(state, 'loud');
    assert.equal(c.status, 'passing');
    assert.equal(c.output, `${'q'.repeat(4096)} ... (captured 4096 of 100000 bytes)`);
  });

  test('a timeout kills the script and its children: critical', async () => {
    const state = scripts();
    // The shell prints its background child's pid, then waits for it.
    state.addCheck(
      { Name: 'slow', Args: ['sh', '-c', 'sleep 30 & echo $!; wait'], Interval: '10s', Timeout: '500ms' },
      'api',
    );
    const c = await firstResult(state, 'slow');
    assert.equal(c.status, 'critical');
    const match = /^Timed out \(500 ms\) running check\n\n(\d+)\n$/.exec(c.output);
    assert.ok(match, `unexpected output ${JSON.stringify(c.output)}`);
    const pid = Number(match[1]);
    await eventually(`the script's child ${pid} to be killed`, () => !alive(pid), 5000);
  });

  test('a script killed by a signal is critical, and the check keeps running', async () => {
    const state = scripts();
    const dir = tempDir('script');
    try {
      const counter = join(dir.path, 'runs');
      state.addCheck(
        {
          Name: 'suicide',
          Args: ['sh', '-c', `echo x >> ${counter}; echo dying; kill -9 $$`],
          Interval: '1s',
        },
        'api',
      );
      const c = await firstResult(state, 'suicide');
      assert.equal(c.status, 'critical');
      assert.equal(c.output, 'dying\nkilled by SIGKILL');
      await eventually(
        'a second run',
        () => readFileSync(counter, 'utf8').split('\n').filter(Boolean).length >= 2,
        8000,
      );
    } finally {
      state.stop();
      dir.remove();
    }
  });

  test('a missing executable is critical', async () => {
    const state = scripts();
    state.addCheck({ Name: 'missing', Args: ['/nonexistent/conclave-check'], Interval: '1s' }, 'api');
    const c = await firstResult(state, 'missing');
    assert.equal(c.status, 'critical');
    assert.match(c.output, /ENOENT/);
  });
});

/** Whether a process is still running (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('persistence in the data dir', () => {
  test('API registrations survive a restart; config-file ones and removed ones do not', () => {
    const dir = tempDir('persist');
    try {
      const first = makeState({ dataDir: dir.path });
      first.addService({ Name: 'web', ID: 'web-1', Port: 8080, Tags: ['a'], Check: { TTL: '30s' } }, 'api');
      first.addService({ Name: 'gone', Check: { TTL: '30s' } }, 'api');
      first.addCheck({ CheckID: 'node-ttl', Name: 'node ttl', TTL: '30s' }, 'api');
      first.addCheck({ CheckID: 'svc-extra', Name: 'extra', TTL: '30s', ServiceID: 'gone' }, 'api');
      first.addService({ Name: 'from-config' }, 'config');
      first.removeService('gone');
      first.stop();

      const log = new RecordingLogger();
      const second = makeState({ dataDir: dir.path, log });
      second.loadPersisted();
      assert.deepEqual([...second.services.keys()].sort(), ['web-1']);
      assert.deepEqual(second.services.get('web-1')?.service, {
        id: 'web-1',
        service: 'web',
        port: 8080,
        tags: ['a'],
      });
      assert.deepEqual([...second.checks.keys()].sort(), ['node-ttl', 'service:web-1']);
      assert.deepEqual(
        log.lines.filter((l) => l.level === 'warn'),
        [],
        "removing a service removed its checks' files too",
      );
      assert.equal(readdirSync(join(dir.path, 'checks')).length, 1);
    } finally {
      dir.remove();
    }
  });

  test('a removed check does not come back', () => {
    const dir = tempDir('persist');
    try {
      const first = makeState({ dataDir: dir.path });
      first.addCheck({ CheckID: 'c', Name: 'c', TTL: '30s' }, 'api');
      assert.equal(first.removeCheck('c'), true);
      assert.equal(first.removeCheck('c'), false);
      const second = makeState({ dataDir: dir.path });
      second.loadPersisted();
      assert.equal(second.checks.size, 0);
    } finally {
      dir.remove();
    }
  });

  test('a corrupt file is skipped with a warning, the rest still load', () => {
    const dir = tempDir('persist');
    try {
      const first = makeState({ dataDir: dir.path });
      first.addService({ Name: 'good' }, 'api');
      first.addCheck({ CheckID: 'good-check', Name: 'g', TTL: '30s' }, 'api');
      writeFileSync(join(dir.path, 'services', 'corrupt'), '{"Name": "half');
      writeFileSync(join(dir.path, 'checks', 'invalid'), JSON.stringify({ Name: 'no type' }));
      writeFileSync(join(dir.path, 'services', 'leftover.tmp'), 'partial write');

      const log = new RecordingLogger();
      const second = makeState({ dataDir: dir.path, log });
      second.loadPersisted();
      assert.deepEqual([...second.services.keys()], ['good']);
      assert.deepEqual([...second.checks.keys()], ['good-check']);
      const warnings = log.lines.filter((l) => l.level === 'warn');
      assert.equal(warnings.length, 2, JSON.stringify(warnings));
      assert.deepEqual(warnings.map((w) => w.fields?.file).sort(), ['corrupt', 'invalid']);
      assert.match(String(warnings.find((w) => w.fields?.file === 'corrupt')?.fields?.error), /JSON/);
    } finally {
      dir.remove();
    }
  });

  test('no data dir: nothing is written, loading is a no-op', () => {
    const state = makeState({ dataDir: null });
    state.addService({ Name: 'web' }, 'api');
    state.loadPersisted();
    assert.equal(state.services.size, 1);
  });
});
