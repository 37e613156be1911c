import { type Message, MessageType, type NodeId } from '../raft/types.js';

/**
 * Holds the leader's commit-only appends (`Message.commitOnly`) for a moment before sending
 * them. Every append and heartbeat carries the leader's commit index, so when one goes to the
 * same follower while a notice is held, and carries at least the notice's commit, the notice
 * is dropped: under a steady stream of writes the next write's append tells followers of the
 * previous commit, and a lone write costs the leader two socket writes (and each follower one
 * wake-up) fewer. When nothing follows, the notice goes out after `holdMs`.
 *
 * Safe by construction: a commit-only append asks for no answer and changes nothing on the
 * leader, and Raft tolerates any message being late or lost; the follower learns the commit
 * index from the next append or heartbeat at the latest (Raft §5.3).
 */
export class CommitNotices {
  private readonly held = new Map<NodeId, Message>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deliver: (m: Message) => void,
    private readonly holdMs: number,
  ) {}

  send(m: Message): void {
    if (m.type === MessageType.App && m.commitOnly) {
      if (this.holdMs <= 0) {
        this.deliver(m);
        return;
      }
      // A newer notice to the same follower carries a commit at least as high.
      this.held.set(m.to, m);
      this.timer ??= setTimeout(() => this.flush(), this.holdMs);
      return;
    }
    const notice = this.held.get(m.to);
    if (notice && carriesCommitOf(m, notice)) this.held.delete(m.to);
    this.deliver(m);
  }

  /** Send every held notice now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const notices = [...this.held.values()];
    this.held.clear();
    for (const m of notices) this.deliver(m);
  }

  /**
   * Send the notice held for `to`, if any: the leader answers a write `to` forwarded, and `to`
   * waits to apply it before it answers its client (read-your-writes), so it should learn the
   * commit now rather than after the hold.
   */
  flushTo(to: NodeId): void {
    const notice = this.held.get(to);
    if (!notice) return;
    this.held.delete(to);
    if (this.held.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.deliver(notice);
  }

  get heldCount(): number {
    return this.held.size;
  }
}

/** `m` tells the follower at least what `notice` would: same term, a commit index as high. */
function carriesCommitOf(m: Message, notice: Message): boolean {
  return (
    (m.type === MessageType.App || m.type === MessageType.Heartbeat) &&
    m.term === notice.term &&
    (m.commit ?? 0) >= (notice.commit ?? 0)
  );
}
