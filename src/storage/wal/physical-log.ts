/**
 * Replays WAL records into the log they describe, checking that they fit together. Recovery
 * runs it over every record read back (keeping entries); the writer runs it over every record
 * it writes (without entries) to know each segment's live range, so it can tell when a
 * snapshot covers a whole segment.
 */
import type { Entry, HardState } from '../../raft/types.js';
import type { SnapshotMarker } from './codec.js';

/** Records that do not fit together: corruption, or a writer bug. */
export class ReplayError extends Error {}

export interface SegmentInfo {
  seq: number;
  firstIndex: number;
  fileName: string;
  /** The highest entry index in this segment not since discarded; 0 if none. */
  liveMaxIndex: number;
}

export class PhysicalLog {
  /** The index before the first entry we know of. */
  baseIndex = 0;
  lastIndex = 0;
  /** Term of the entry at lastIndex, when known (0 after a truncation into unknown territory). */
  lastTerm = 0;
  hardState: HardState | null = null;
  /** The newest snapshot the log was reset to (a marker that discarded the log); 0 if none. */
  resetSnapshotIndex = 0;
  readonly segments: SegmentInfo[] = [];
  /** Entries after baseIndex, when this instance keeps them (recovery). */
  entries: Entry[] | null;

  constructor(keepEntries: boolean) {
    this.entries = keepEntries ? [] : null;
  }

  /** Start a segment; the first segment seen sets where the log starts. */
  startSegment(seq: number, firstIndex: number, fileName: string): void {
    if (this.segments.length === 0) {
      this.baseIndex = firstIndex - 1;
      this.lastIndex = firstIndex - 1;
    } else if (firstIndex !== this.lastIndex + 1) {
      throw new ReplayError(
        `segment starts at index ${firstIndex} but the log before it ends at ${this.lastIndex}`,
      );
    }
    this.segments.push({ seq, firstIndex, fileName, liveMaxIndex: 0 });
  }

  appendEntry(index: number, term: number, entry?: Entry): void {
    if (index !== this.lastIndex + 1) {
      throw new ReplayError(`entry ${index} does not follow the last index ${this.lastIndex}`);
    }
    if (term < this.lastTerm)
      throw new ReplayError(`entry ${index} has term ${term} below the previous ${this.lastTerm}`);
    if (this.entries !== null && entry !== undefined) this.entries.push(entry);
    this.lastIndex = index;
    this.lastTerm = term;
    this.currentSegment().liveMaxIndex = index;
  }

  truncate(fromIndex: number): void {
    if (fromIndex > this.lastIndex + 1) {
      throw new ReplayError(`truncation from ${fromIndex} is beyond the last index ${this.lastIndex}`);
    }
    if (fromIndex <= this.baseIndex + 1) {
      // Reaches before what this replay saw (segments since released): the log restarts here.
      this.baseIndex = fromIndex - 1;
      if (this.entries !== null) this.entries.length = 0;
      this.lastTerm = 0;
    } else if (this.entries !== null) {
      this.entries.length = fromIndex - 1 - this.baseIndex;
      this.lastTerm = this.entries.at(-1)?.term ?? 0;
    } else {
      this.lastTerm = 0;
    }
    this.lastIndex = fromIndex - 1;
    for (const segment of this.segments) segment.liveMaxIndex = Math.min(segment.liveMaxIndex, fromIndex - 1);
  }

  applyMarker(marker: SnapshotMarker): void {
    if (marker.keptLog) {
      if (marker.index > this.lastIndex) {
        throw new ReplayError(
          `snapshot marker at ${marker.index} keeps a log that ends at ${this.lastIndex}`,
        );
      }
      return;
    }
    this.baseIndex = marker.index;
    this.lastIndex = marker.index;
    this.lastTerm = marker.term;
    this.resetSnapshotIndex = marker.index;
    if (this.entries !== null) this.entries.length = 0;
    for (const segment of this.segments) segment.liveMaxIndex = 0;
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /** The term of a kept entry (recovery only), or undefined. */
  termAt(index: number): number | undefined {
    if (this.entries === null || index <= this.baseIndex || index > this.lastIndex) return undefined;
    return this.entries[index - this.baseIndex - 1]?.term;
  }

  private currentSegment(): SegmentInfo {
    const segment = this.segments.at(-1);
    if (segment === undefined) throw new ReplayError('record outside any segment');
    return segment;
  }
}
