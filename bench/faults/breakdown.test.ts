import { describe, expect, it } from 'vitest';
import { deliveryTotals, episodes, type Fault, type Timeline } from './breakdown.js';
import type { SocketAttempt, TimelineEvent } from './observed_client.js';

const A = 'ws://a';
const B = 'ws://b';

function timeline(name: string, events: TimelineEvent[], attempts: SocketAttempt[], received: Timeline['received'] = []): Timeline {
  return { options: { name }, events, attempts, received };
}

const attempt = (url: string, startedAt: number, openedAt: number, endedAt: number, failure = ''): SocketAttempt => ({ url, startedAt, openedAt, endedAt, failure });

describe('reconnect breakdown', () => {
  it('splits a reconnection after a kill into notice, SDK backoff, socket attempts and subscribe, and attributes it to the fault on its instance', () => {
    const client = timeline(
      'c',
      [
        { at: 0, kind: 'subscribing', code: 0, reason: 'subscribe called' },
        { at: 1, kind: 'connecting', code: 0, reason: 'connect called' },
        { at: 10, kind: 'connected' },
        { at: 12, kind: 'subscribed', wasRecovering: false, recovered: false },
        { at: 1050, kind: 'subscribing', code: 1, reason: 'transport closed' },
        { at: 1050, kind: 'connecting', code: 1, reason: 'transport closed' },
        { at: 1600, kind: 'error', type: 'transport', code: 0, message: 'refused' },
        { at: 2000, kind: 'connected' },
        { at: 2030, kind: 'sub_error', type: 'subscribe', code: 111, message: 'temporary' },
        { at: 2100, kind: 'subscribed', wasRecovering: true, recovered: true },
      ],
      [attempt(A, 2, 5, 1050), attempt(A, 1590, 0, 1600, 'refused'), attempt(B, 1990, 1995, 0)],
    );
    const faults: Fault[] = [{ kind: 'kill', at: 1000, instance: A, endAt: 3000 }];
    expect(episodes([client], faults)).toEqual([
      {
        client: 'c',
        fault: 'kill',
        totalMs: 1100,
        noticeMs: 50,
        inAttemptsMs: 20,
        backoffMs: 930,
        subscribeMs: 100,
        attempts: 2,
        failures: ['refused'],
        connectErrors: [0],
        subscribeErrors: [111],
        recovered: true,
      },
    ]);
    // A fault on another instance is not this client's.
    expect(episodes([client], [{ kind: 'kill', at: 1000, instance: B, endAt: 3000 }])[0]?.fault).toBe('none');
  });

  it('counts missing, duplicated and reordered publications against those acknowledged after the first subscribe', () => {
    const client = timeline('c', [{ at: 100, kind: 'subscribed', wasRecovering: false, recovered: false }], [], [
      { at: 200, n: 2, offset: 2, epoch: 'e' },
      { at: 210, n: 2, offset: 2, epoch: 'e' },
      { at: 220, n: 4, offset: 4, epoch: 'e' },
    ]);
    const acked = new Map([
      [1, 50],
      [2, 150],
      [3, 160],
      [4, 170],
    ]);
    expect(deliveryTotals([client], acked)).toEqual({ expected: 3, missing: 1, duplicates: 1, outOfOrder: 1, missingAckedAt: [160], missingTold: 0 });
    // The same, the client's next subscribe unrecovered: the application was told.
    client.events.push({ at: 300, kind: 'subscribed', wasRecovering: true, recovered: false });
    expect(deliveryTotals([client], acked)).toMatchObject({ missing: 1, missingTold: 1 });
  });
});
