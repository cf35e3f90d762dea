import type { WirePublication } from './types.js';

/**
 * The encoded publications of replies, shared by the replies that carry the same run: in a
 * reconnect storm every client recovering from the same position gets the same publications
 * (the same objects, from the node's memory), and the ones that reconnect a little later get
 * that run plus the few published since, encoded only for the first. Kept per first
 * publication: the run encoded last.
 */
export class SharedRuns<T> {
  private readonly runs = new WeakMap<WirePublication, { readonly publications: readonly WirePublication[]; readonly encoded: T }>();

  /**
   * @param encode the encoding of a run of publications (not empty)
   * @param append an encoded run followed by the encoding of the publications after it
   * @param empty the encoding of no publication
   */
  constructor(
    private readonly encode: (publications: readonly WirePublication[]) => T,
    private readonly append: (run: T, rest: T) => T,
    private readonly empty: T,
  ) {}

  of(publications: readonly WirePublication[]): T {
    const first = publications[0];
    if (first === undefined) return this.empty;
    const cached = this.runs.get(first);
    let shared = 0;
    if (cached && cached.publications.length <= publications.length) {
      while (shared < cached.publications.length && cached.publications[shared] === publications[shared]) shared++;
      if (shared === publications.length) return cached.encoded;
    }
    const grows = cached !== undefined && shared === cached.publications.length;
    const rest = this.encode(grows ? publications.slice(shared) : publications);
    const encoded = grows ? this.append(cached.encoded, rest) : rest;
    this.runs.set(first, { publications: publications.slice(), encoded });
    return encoded;
  }
}
