import { invariant } from './assert.js';
import { type Entry, EntryType } from './types.js';

/** Size of one block of entry bytes. An entry bigger than a quarter of it gets a block of its own. */
const BLOCK_BYTES = 256 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * The entries of a Raft log, held without an object per entry: terms and the place of each
 * entry's bytes in number arrays, the bytes copied into large append-only blocks. An `Entry`
 * is made when one is asked for, and dies young with its caller.
 *
 * Why: a log holds tens of thousands of entries for seconds. As objects (the entry and a
 * Buffer for its bytes) each one was copied twice by V8's young-generation GC before it
 * settled in the old generation, and those copies are much of a busy server's GC pauses.
 *
 * Bytes are never overwritten: a truncated entry's space is left unused, so an entry made
 * earlier (in a message being sent, a batch being written) keeps its bytes. Membership entries,
 * rare and carrying objects, are kept whole.
 *
 * Positions are 0-based from the first entry held; the log maps indexes to positions.
 */
export class EntryArena {
  private terms: number[] = [];
  /** Per entry: which block (absolute number), where in it, how many bytes. */
  private blockOf: number[] = [];
  private startOf: number[] = [];
  private lengthOf: number[] = [];
  /** blocks[k] is block number firstBlock + k; the last one is being filled. */
  private blocks: Buffer[] = [];
  private firstBlock = 0;
  private filled = BLOCK_BYTES;
  /** Entries that are not plain commands (membership changes), whole, by index. */
  private readonly whole = new Map<number, Entry>();

  get length(): number {
    return this.terms.length;
  }

  push(entry: Entry): void {
    this.terms.push(entry.term);
    if (entry.type !== EntryType.Normal || entry.change !== undefined || entry.config !== undefined) {
      this.whole.set(entry.index, entry);
      this.place(-1, 0, entry.data.byteLength);
      return;
    }
    const bytes = entry.data;
    if (bytes.byteLength === 0) {
      this.place(-1, 0, 0);
      return;
    }
    if (bytes.byteLength > BLOCK_BYTES / 4) {
      // A block of its own, and the next entry starts a fresh block.
      this.blocks.push(Buffer.from(bytes));
      this.filled = BLOCK_BYTES;
      this.place(this.lastBlock(), 0, bytes.byteLength);
      return;
    }
    if (this.filled + bytes.byteLength > BLOCK_BYTES) {
      this.blocks.push(Buffer.allocUnsafeSlow(BLOCK_BYTES));
      this.filled = 0;
    }
    this.blocks[this.blocks.length - 1]!.set(bytes, this.filled);
    this.place(this.lastBlock(), this.filled, bytes.byteLength);
    this.filled += bytes.byteLength;
  }

  term(position: number): number {
    return this.terms[position]!;
  }

  dataBytes(position: number): number {
    return this.lengthOf[position]!;
  }

  /** The entry at `position`, whose log index is `index`: a new object on every call. */
  entry(position: number, index: number): Entry {
    invariant(position >= 0 && position < this.terms.length, () => `no entry at position ${position}`);
    const block = this.blockOf[position]!;
    if (block < 0) {
      const kept = this.whole.get(index);
      if (kept !== undefined) return kept;
      return { term: this.terms[position]!, index, type: EntryType.Normal, data: EMPTY };
    }
    const start = this.startOf[position]!;
    const data = this.blocks[block - this.firstBlock]!.subarray(start, start + this.lengthOf[position]!);
    return { term: this.terms[position]!, index, type: EntryType.Normal, data };
  }

  /** Keep the first `count` entries; `firstIndex` is the index of position 0. */
  truncate(count: number, firstIndex: number): void {
    for (const index of this.whole.keys()) if (index >= firstIndex + count) this.whole.delete(index);
    this.terms.length = count;
    this.blockOf.length = count;
    this.startOf.length = count;
    this.lengthOf.length = count;
  }

  /** Drop the first `count` entries (compaction), and the blocks only they used. */
  dropFront(count: number, firstIndex: number): void {
    if (count <= 0) return;
    for (const index of this.whole.keys()) if (index < firstIndex + count) this.whole.delete(index);
    this.terms = this.terms.slice(count);
    this.blockOf = this.blockOf.slice(count);
    this.startOf = this.startOf.slice(count);
    this.lengthOf = this.lengthOf.slice(count);
    let keepFrom = this.lastBlock();
    for (const block of this.blockOf) {
      if (block >= 0) {
        keepFrom = block;
        break;
      }
    }
    if (keepFrom > this.firstBlock) {
      this.blocks = this.blocks.slice(keepFrom - this.firstBlock);
      this.firstBlock = keepFrom;
    }
  }

  clear(): void {
    this.whole.clear();
    this.terms = [];
    this.blockOf = [];
    this.startOf = [];
    this.lengthOf = [];
    this.firstBlock += this.blocks.length;
    this.blocks = [];
    this.filled = BLOCK_BYTES;
  }

  /** Bytes held in blocks (for tests: compaction must release them). */
  blockBytes(): number {
    let total = 0;
    for (const block of this.blocks) total += block.byteLength;
    return total;
  }

  private lastBlock(): number {
    return this.firstBlock + this.blocks.length - 1;
  }

  private place(block: number, start: number, length: number): void {
    this.blockOf.push(block);
    this.startOf.push(start);
    this.lengthOf.push(length);
  }
}
