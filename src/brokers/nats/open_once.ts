/**
 * A connection (or any resource) opened on first use and shared by the calls after it. A
 * failed opening is forgotten, so that the next call tries again instead of failing forever;
 * so is one the caller found broken (`forget`).
 */
export class OpenOnce<T> {
  private opening: Promise<T> | undefined;

  constructor(private readonly open: () => Promise<T>) {}

  /** The resource: the opening under way or done, or a new one. */
  get(): Promise<T> {
    if (!this.opening) {
      const opening = this.open();
      this.opening = opening;
      opening.catch(() => this.forget(opening));
    }
    return this.opening;
  }

  /** Forgets `opening` if it is still the current one: the next `get` opens again. */
  forget(opening: Promise<T>): void {
    if (this.opening === opening) this.opening = undefined;
  }

  /** The current opening, if any: what a close waits for. */
  get current(): Promise<T> | undefined {
    return this.opening;
  }
}
