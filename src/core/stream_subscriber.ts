import type { ChannelSubscriber, FrameCache } from './hub.js';
import type { ClientInfo, Publication } from './publication.js';

/**
 * A subscriber that starts buffering: between joining the hub and replying to its
 * subscribe (history read in between), publications are held so that the replay and the
 * live stream meet with no gap and no duplicate. `goLive` ends buffering.
 */
export abstract class StreamSubscriber implements ChannelSubscriber {
  private buffer: FrameCache<Publication>[] | null = [];
  private gapWhileBuffering = false;

  onPublication(frames: FrameCache<Publication>): void {
    if (this.buffer !== null) this.buffer.push(frames);
    else this.deliverPublication(frames);
  }

  onJoin(frames: FrameCache<ClientInfo>): void {
    if (this.buffer === null) this.deliverJoin(frames);
  }

  onLeave(frames: FrameCache<ClientInfo>): void {
    if (this.buffer === null) this.deliverLeave(frames);
  }

  onGap(channel: string): void {
    if (this.buffer !== null) this.gapWhileBuffering = true;
    else this.handleGap(channel);
  }

  get live(): boolean {
    return this.buffer === null;
  }

  /** Whether the bus reported a gap while buffering (the subscribe must be retried). */
  get sawGap(): boolean {
    return this.gapWhileBuffering;
  }

  /** Takes what arrived while buffering, and from now on delivers live. Synchronous with the caller's reply. */
  goLive(): FrameCache<Publication>[] {
    const buffered = this.buffer ?? [];
    this.buffer = null;
    return buffered;
  }

  /** Back to buffering, for a resubscribe on the same object. */
  restartBuffering(): void {
    this.buffer = [];
    this.gapWhileBuffering = false;
  }

  protected abstract deliverPublication(frames: FrameCache<Publication>): void;
  protected abstract deliverJoin(frames: FrameCache<ClientInfo>): void;
  protected abstract deliverLeave(frames: FrameCache<ClientInfo>): void;
  protected abstract handleGap(channel: string): void;
}
