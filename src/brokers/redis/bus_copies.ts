/**
 * Tells the copies Redis sends of one bus message apart from the next message.
 *
 * A subscriber connection that holds both a SUBSCRIBE of a bus channel and PSUBSCRIBEs that
 * match it gets each PUBLISH to that channel several times: first one `message`, then one
 * `pmessage` per matching pattern. Redis runs commands one at a time and writes all of
 * them to the connection before anything else (pubsub.c: channel subscribers first, then
 * the pattern dictionary), so the copies of one publish are always back to back, and a
 * given pattern sends at most one of them.
 *
 * Hence a `pmessage` repeats the previous event exactly when it has the same bus channel
 * and text and its pattern has not already sent a copy of that event; a `message` always
 * starts a new one. Two publishes with the same text back to back stay two: the second
 * starts with a `message`, or with a pattern the first already used. They could only be
 * merged if every pattern matching the channel were replaced between them (and it had no
 * SUBSCRIBE), which a node does not do.
 */
export class BusCopies {
  private bus: string | undefined;
  private text = '';
  private readonly patterns = new Set<string>();
  private handled = false;

  /**
   * Whether this event is a further copy of one already handled: drop it then. Otherwise it
   * becomes (or joins, as a copy not yet handled) the current event.
   * @param pattern The PSUBSCRIBE pattern of a `pmessage`; undefined for a `message`.
   */
  isHandledCopy(pattern: string | undefined, bus: string, text: string): boolean {
    if (pattern !== undefined && bus === this.bus && !this.patterns.has(pattern) && text === this.text) {
      this.patterns.add(pattern);
      return this.handled;
    }
    this.bus = bus;
    this.text = text;
    this.patterns.clear();
    if (pattern !== undefined) this.patterns.add(pattern);
    this.handled = false;
    return false;
  }

  /** The current event reached the handler: its further copies are dropped. */
  markHandled(): void {
    this.handled = true;
  }

  /** Forgets the current event (a new connection starts with no copies pending). */
  reset(): void {
    this.bus = undefined;
    this.text = '';
    this.patterns.clear();
    this.handled = false;
  }
}
