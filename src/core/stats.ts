/**
 * Counters of a node, kept as plain numbers so that the delivery path pays an integer
 * increment and nothing more; the metrics endpoint reads them at scrape time.
 */
function noop(): void {}

export class NodeStats {
  /** Commands received, by method. */
  readonly messagesIn = new Map<string, number>();
  /** Messages written to connections, by kind (publication, join, leave, reply, ...). */
  readonly messagesOut = new Map<string, number>();
  /** Closed connections, by reason. */
  readonly disconnections = new Map<string, number>();
  /** Commands or requests refused by a rate limit, by scope (connection, user, namespace, api). */
  readonly rateLimited = new Map<string, number>();
  /** Broker operations that failed, by operation. */
  readonly brokerErrors = new Map<string, number>();
  /** Store operations that failed, by operation (append, history, clear, gap fill). */
  readonly storeErrors = new Map<string, number>();
  /** Open connections, by transport. */
  readonly activeConnections = new Map<string, number>();
  /**
   * Publications that arrived out of sequence and sent subscribers through recovery instead
   * of being delivered, by scope: `channel` (the node's stream of a channel skipped offsets:
   * the bus lost messages) or `subscriber` (one subscription was about to skip an offset or
   * cross into another epoch).
   */
  readonly outOfSequence = new Map<string, number>();
  publicationsDelivered = 0;
  slowConsumerDisconnects = 0;
  sseEvents = 0;
  /** Latest-value reads (server API `latest`) answered from this node's memory, and those that read the bus. */
  snapshotHits = 0;
  snapshotMisses = 0;
  /** Latency observers; the metrics endpoint replaces these no-ops with histograms. */
  observeCommandLatency: (method: string, ms: number) => void = noop;
  observePublishLatency: (ms: number) => void = noop;
  observeSseLatency: (ms: number) => void = noop;

  static inc(map: Map<string, number>, key: string, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }
}
