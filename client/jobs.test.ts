import { describe, expect, it } from 'vitest';
import { batchChannel, isTerminalStatus } from './jobs.js';

describe('job helpers', () => {
  it('names a job channel in the batch namespace and refuses an id the server would refuse', () => {
    expect(batchChannel('42')).toBe('batch:42');
    expect(() => batchChannel('a b')).toThrow(TypeError);
    expect(() => batchChannel('')).toThrow(TypeError);
  });

  it('knows the default terminal statuses, or the ones given', () => {
    expect(['COMPLETED', 'PARTIAL', 'FAILED', 'PROCESSING'].map((s) => isTerminalStatus(s))).toEqual([true, true, true, false]);
    expect(isTerminalStatus('DONE', ['DONE'])).toBe(true);
  });
});
