import { invariant } from './assert.js';
import type { ConfChange, ConfigState, Entry, NodeId } from './types.js';
import { EntryType } from './types.js';

/**
 * Which configuration is in force: the latest ConfChange entry in the log, committed or not
 * (thesis §4.1: "a server always uses the latest configuration in its log"). Removing a
 * conflicting suffix of the log reverts to the configuration before it.
 */
export class Membership {
  /** Configuration as of the compaction point. */
  private base: ConfigState;
  private baseIndex: number;
  /** ConfChange entries after the compaction point, in index order. */
  private changes: { index: number; config: ConfigState }[] = [];
  private voterSet = new Set<NodeId>();
  private learnerSet = new Set<NodeId>();

  constructor(base: ConfigState, baseIndex: number) {
    this.base = base;
    this.baseIndex = baseIndex;
    this.refresh();
  }

  current(): ConfigState {
    return this.changes[this.changes.length - 1]?.config ?? this.base;
  }

  /** Index of the entry that set the current configuration (the compaction point if older). */
  currentIndex(): number {
    return this.changes[this.changes.length - 1]?.index ?? this.baseIndex;
  }

  voters(): readonly NodeId[] {
    return this.current().voters;
  }

  learners(): readonly NodeId[] {
    return this.current().learners;
  }

  isVoter(id: NodeId): boolean {
    return this.voterSet.has(id);
  }

  isLearner(id: NodeId): boolean {
    return this.learnerSet.has(id);
  }

  isMember(id: NodeId): boolean {
    return this.voterSet.has(id) || this.learnerSet.has(id);
  }

  /** Returns true when the configuration in force changed. */
  onAppend(entries: readonly Entry[]): boolean {
    let changed = false;
    for (const e of entries) {
      // Entries re-delivered by a duplicate append are already counted.
      if (e.type !== EntryType.ConfChange || e.index <= this.currentIndex()) continue;
      invariant(e.config !== undefined, () => `ConfChange entry ${e.index} carries no configuration`);
      const last = this.changes[this.changes.length - 1];
      invariant(!last || last.index < e.index, 'configuration entries arrive in index order');
      this.changes.push({ index: e.index, config: e.config });
      changed = true;
    }
    if (changed) this.refresh();
    return changed;
  }

  onTruncate(fromIndex: number): boolean {
    let changed = false;
    while (this.changes.length > 0 && this.changes[this.changes.length - 1]!.index >= fromIndex) {
      this.changes.pop();
      changed = true;
    }
    if (changed) this.refresh();
    return changed;
  }

  configAt(index: number): ConfigState {
    let config = this.base;
    for (const c of this.changes) {
      if (c.index > index) break;
      config = c.config;
    }
    return config;
  }

  compact(index: number): void {
    if (index <= this.baseIndex) return;
    this.base = this.configAt(index);
    this.baseIndex = index;
    this.changes = this.changes.filter((c) => c.index > index);
  }

  restore(config: ConfigState, index: number): void {
    this.base = config;
    this.baseIndex = index;
    this.changes = [];
    this.refresh();
  }

  private refresh(): void {
    const c = this.current();
    this.voterSet = new Set(c.voters);
    this.learnerSet = new Set(c.learners);
    for (const l of c.learners) invariant(!this.voterSet.has(l), `${l} is both voter and learner`);
  }
}

/** The configuration that results from one single-server change, or a reason it is invalid. */
export function applyConfChange(config: ConfigState, change: ConfChange): ConfigState | string {
  const voters = new Set(config.voters);
  const learners = new Set(config.learners);
  const { node } = change;
  if (node === '') return 'node id must not be empty';
  switch (change.type) {
    case 'addVoter':
      if (voters.has(node)) return `${node} is already a voter`;
      learners.delete(node);
      voters.add(node);
      break;
    case 'addLearner':
      if (voters.has(node)) return `${node} is a voter; remove it before adding it as a learner`;
      if (learners.has(node)) return `${node} is already a learner`;
      learners.add(node);
      break;
    case 'promoteLearner':
      if (!learners.has(node)) return `${node} is not a learner`;
      learners.delete(node);
      voters.add(node);
      break;
    case 'removeNode':
      if (!voters.has(node) && !learners.has(node)) return `${node} is not a member`;
      voters.delete(node);
      learners.delete(node);
      if (voters.size === 0) return 'cannot remove the last voter';
      break;
  }
  return { voters: [...voters].sort(), learners: [...learners].sort() };
}
