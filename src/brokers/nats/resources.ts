import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsStreamsOf } from './names.js';
import { isStreamNotFound } from './util.js';

/**
 * Deletes every stream and KV bucket a prefix created (history, idempotency results,
 * presence). For tests and for decommissioning a cluster; nodes using the prefix must be
 * stopped first, or they recreate what they need on their next start.
 */
export async function deleteNatsPrefix(servers: string | readonly string[], prefix: string, timeoutMs = 5000): Promise<void> {
  const nc = await connect({ servers: typeof servers === 'string' ? [servers] : [...servers], timeout: timeoutMs, name: 'relais-cleanup' });
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    for (const stream of natsStreamsOf(prefix)) {
      try {
        await jsm.streams.delete(stream);
      } catch (err) {
        if (!isStreamNotFound(err)) throw err;
      }
    }
  } finally {
    await nc.close();
  }
}
