import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from './connection.js';

describe('Redis reconnect backoff', () => {
  it('doubles from 100 ms and never waits more than 500 ms between tries', () => {
    expect([1, 2, 3, 4, 5, 10, 1000].map(reconnectDelayMs)).toEqual([100, 200, 400, 500, 500, 500, 500]);
  });
});
