/**
 * Crash-test child: loads the WAL in --dir, then runs the seeded workload until killed,
 * printing `ack <n>` once the nth save() has resolved. Protocol on stdout, one line each:
 *   start            before load()
 *   loaded <digest>  the recovered state's digest (the parent checks it matches its own)
 *   ack <n>          save number n (1-based, in call order) is durable
 */
import { parseArgs } from 'node:util';
import { WalStorage } from '../../src/storage/wal/wal-storage.js';
import { crashWalOptions, maxOutstandingSaves, Workload, WorkloadModel } from './crash-workload.js';

const { values } = parseArgs({ options: { dir: { type: 'string' }, seed: { type: 'string' } } });
if (values.dir === undefined || values.seed === undefined) {
  process.stderr.write('usage: crash-child --dir <data dir> --seed <n>\n');
  process.exit(2);
}

const storage = new WalStorage({ dir: values.dir, ...crashWalOptions });
process.stdout.write('start\n');
const state = await storage.load();
const model = WorkloadModel.fromRecovered(state);
process.stdout.write(`loaded ${model.digest()}\n`);
const workload = new Workload(Number(values.seed), model);

const die = (error: unknown) => {
  process.stderr.write(`crash-child: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
};

let issued = 0;
let outstanding = 0;
let wake: (() => void) | null = null;
for (;;) {
  while (outstanding >= maxOutstandingSaves) await new Promise<void>((resolve) => (wake = resolve));
  const { save, snapshot } = workload.step();
  const number = ++issued;
  outstanding++;
  storage.save(save).then(() => {
    process.stdout.write(`ack ${number}\n`);
    outstanding--;
    if (snapshot !== null) storage.saveSnapshot(snapshot).catch(die);
    wake?.();
    wake = null;
  }, die);
  // Let the event loop breathe so acks and fsync completions interleave with new calls.
  if (number % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
}
