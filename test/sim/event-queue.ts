import { MinHeap } from '../../src/gossip/min-heap.js';

/** Events ordered by (time, insertion sequence): deterministic ties. */
export interface SimEvent {
  time: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  private readonly heap = new MinHeap<SimEvent>((a, b) => a.time - b.time || a.seq - b.seq);
  private seq = 0;

  get size(): number {
    return this.heap.size;
  }

  /** When the next event is due, if any. */
  peekTime(): number | undefined {
    return this.heap.peek()?.time;
  }

  push(time: number, run: () => void): void {
    this.heap.push({ time, seq: this.seq++, run });
  }

  pop(): SimEvent | undefined {
    return this.heap.pop();
  }
}
