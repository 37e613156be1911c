/**
 * A minimal typed event registry. Unlike EventEmitter, an 'error' event without listeners is
 * not thrown, and a listener that throws cannot break the loop that emits.
 */
export class Listeners<Events extends { [E in keyof Events]: (arg: never) => void }> {
  readonly #byEvent = new Map<keyof Events, Set<Events[keyof Events]>>();

  /** Adds a listener; returns a function that removes it. */
  add<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#byEvent.get(event);
    if (set === undefined) {
      set = new Set();
      this.#byEvent.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** Calls each listener of `event`; returns the errors listeners threw. */
  emit<E extends keyof Events>(event: E, arg: Parameters<Events[E]>[0]): unknown[] {
    const thrown: unknown[] = [];
    for (const listener of [...(this.#byEvent.get(event) ?? [])]) {
      try {
        (listener as (a: typeof arg) => void)(arg);
      } catch (error) {
        thrown.push(error);
      }
    }
    return thrown;
  }
}
