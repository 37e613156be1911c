/**
 * Probe target selection (SWIM §4.3): walk a shuffled list of members round-robin and reshuffle
 * at the end of every pass, so each member is probed once per pass and a failed one is found
 * within a bounded number of periods. New members go in at a random position (memberlist), so
 * a burst of joiners is not probed last by everyone.
 */
export class ProbeOrder {
  private list: string[] = [];
  private readonly present = new Set<string>();
  private index = 0;

  constructor(private readonly random: () => number) {}

  get length(): number {
    return this.list.length;
  }

  insert(name: string): void {
    if (this.present.has(name)) return;
    this.present.add(name);
    const offset = Math.floor(this.random() * (this.list.length + 1));
    this.list.push(name);
    const last = this.list.length - 1;
    [this.list[offset], this.list[last]] = [this.list[last]!, this.list[offset]!];
  }

  /**
   * The next member `probeable` accepts, or undefined when none is. Names `exists` rejects
   * (reaped members) are dropped at the reshuffle. Visits at most one pass plus one name.
   */
  next(probeable: (name: string) => boolean, exists: (name: string) => boolean): string | undefined {
    for (let visited = 0; visited <= this.list.length; visited++) {
      if (this.index >= this.list.length) {
        this.reshuffle(exists);
        if (this.list.length === 0) return undefined;
      }
      const name = this.list[this.index++]!;
      if (probeable(name)) return name;
    }
    return undefined;
  }

  private reshuffle(exists: (name: string) => boolean): void {
    this.list = this.list.filter((name) => {
      if (exists(name)) return true;
      this.present.delete(name);
      return false;
    });
    for (let i = this.list.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [this.list[i], this.list[j]] = [this.list[j]!, this.list[i]!];
    }
    this.index = 0;
  }
}
