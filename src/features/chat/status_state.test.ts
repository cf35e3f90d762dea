import { describe, expect, it } from 'vitest';
import { clusterStatus, LocalUsers } from './status_state.js';

describe('clusterStatus', () => {
  it('is online when any node has the user online, away when all are idle, offline when none has them', () => {
    expect(clusterStatus([])).toEqual({ status: 'offline' });
    expect(clusterStatus([{ state: 'away', activeAt: 5 }, { state: 'away', activeAt: 9 }])).toEqual({ status: 'away', activeAt: 9 });
    expect(clusterStatus([{ state: 'away', activeAt: 5 }, { state: 'online', activeAt: 1 }])).toEqual({ status: 'online' });
  });
});

describe('LocalUsers', () => {
  it('follows the state diagram: online on connect, away after the idle time, online on activity, gone with the last connection', () => {
    const users = new LocalUsers(1000);
    expect(users.connected('ann', 0)).toEqual({ user: 'ann', state: { state: 'online', activeAt: 0 } });
    expect(users.connected('ann', 100)).toBeUndefined(); // a second connection: still online
    expect(users.active('ann', 500)).toBeUndefined();
    expect(users.idle(1499)).toEqual([]);
    expect(users.idle(1500)).toEqual([{ user: 'ann', state: { state: 'away', activeAt: 500 } }]);
    expect(users.idle(5000)).toEqual([]); // told once
    expect(users.active('ann', 6000)).toEqual({ user: 'ann', state: { state: 'online', activeAt: 6000 } });
    expect(users.disconnected('ann')).toBeUndefined();
    expect(users.state('ann')).toEqual({ state: 'online', activeAt: 6000 });
    expect(users.disconnected('ann')).toEqual({ user: 'ann', state: undefined });
    expect(users.state('ann')).toBeUndefined();
    expect(users.disconnected('ann')).toBeUndefined();
    expect(users.active('ann', 7000)).toBeUndefined();
  });

  it('brings an away user back online with a new connection, and never moves activity back in time', () => {
    const users = new LocalUsers(1000);
    users.connected('bo', 0);
    users.idle(2000);
    expect(users.connected('bo', 2500)).toEqual({ user: 'bo', state: { state: 'online', activeAt: 2500 } });
    users.active('bo', 2000);
    expect(users.state('bo')).toEqual({ state: 'online', activeAt: 2500 });
    expect([...users.entries()]).toEqual([['bo', { state: 'online', activeAt: 2500 }]]);
  });
});
