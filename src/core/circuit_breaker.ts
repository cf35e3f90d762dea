import { RelaisError } from './errors.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Failures in a row that open the circuit (seed 000: 5). */
  readonly failureThreshold: number;
  /** How long the circuit stays open before letting one probe through (seed 000: 30 s). */
  readonly openMs: number;
  readonly onStateChange?: (state: CircuitState) => void;
}

/**
 * Guards message bus publishes (seed 000): after `failureThreshold` failures in a row the
 * circuit opens and publishes fail at once with BROKER_UNAVAILABLE (temporary) instead of
 * waiting on a dead bus; after `openMs` one probe goes through, and its success closes the
 * circuit. Nothing is ever acknowledged and then dropped: an open circuit refuses.
 */
export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(private readonly options: CircuitBreakerOptions) {}

  /**
   * The state as a caller would meet it now: an open circuit whose time is up reads
   * half-open (the next call probes), so readiness does not wait for a publish to notice.
   */
  get current(): CircuitState {
    if (this.state === 'open' && Date.now() - this.openedAt >= this.options.openMs) return 'half-open';
    return this.state;
  }

  async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.state === 'open') {
      if (Date.now() - this.openedAt < this.options.openMs) {
        throw new RelaisError('BROKER_UNAVAILABLE', 'message bus unavailable (circuit open), retry later');
      }
      this.setState('half-open');
    }
    if (this.state === 'half-open') {
      if (this.probing) throw new RelaisError('BROKER_UNAVAILABLE', 'message bus unavailable (probing), retry later');
      this.probing = true;
    }
    try {
      const result = await op();
      this.failures = 0;
      if (this.state !== 'closed') this.setState('closed');
      return result;
    } catch (err) {
      this.failures++;
      if (this.state === 'half-open' || this.failures >= this.options.failureThreshold) {
        this.openedAt = Date.now();
        this.setState('open');
      }
      throw err;
    } finally {
      this.probing = false;
    }
  }

  private setState(state: CircuitState): void {
    this.state = state;
    this.options.onStateChange?.(state);
  }
}
