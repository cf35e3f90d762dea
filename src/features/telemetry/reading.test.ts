import { describe, expect, it } from 'vitest';
import { parseReadingPayload, type ReadingRules } from './reading.js';

const rules: ReadingRules = { sensorTypes: new Set(['temperature', 'pressure']), maxFutureSkewMs: 2000, valueLimit: 1e12 };
const NOW = 1_000_000;

function parse(payload: string, topicDevice?: string) {
  return parseReadingPayload(Buffer.from(payload), rules, NOW, topicDevice);
}

function json(reading: Record<string, unknown>): string {
  return JSON.stringify({ deviceId: 'd1', sensorType: 'temperature', value: 21.5, timestamp: NOW - 10, ...reading });
}

describe('reading checks', () => {
  it('accepts a well-formed reading', () => {
    expect(parse(json({}), 'd1')).toEqual({ ok: true, clamped: false, reading: { deviceId: 'd1', sensorType: 'temperature', value: 21.5, timestamp: NOW - 10 } });
  });

  it.each([
    ['{"deviceId":', 'MALFORMED_JSON'],
    ['[1,2]', 'INVALID_READING'],
    ['null', 'INVALID_READING'],
    [json({ deviceId: '' }), 'INVALID_READING'],
    [json({ deviceId: 'a/b' }), 'INVALID_READING'],
    [json({ sensorType: 42 }), 'INVALID_READING'],
    [json({ sensorType: 'humidity' }), 'UNKNOWN_SENSOR'],
    [json({ value: 'NaN' }), 'INVALID_VALUE'],
    [json({ value: null }), 'INVALID_VALUE'],
    [json({ value: 1e13 }), 'INVALID_VALUE'],
    [json({ timestamp: 'yesterday' }), 'INVALID_READING'],
    [json({ timestamp: -5 }), 'INVALID_READING'],
    [json({ timestamp: NOW + 2001 }), 'TIMESTAMP_FUTURE'],
  ])('refuses %s as %s', (payload, reason) => {
    expect(parse(payload)).toEqual({ ok: false, reason });
  });

  it('refuses Infinity written as 1e999', () => {
    expect(parse('{"deviceId":"d1","sensorType":"temperature","value":1e999}')).toEqual({ ok: false, reason: 'INVALID_VALUE' });
    expect(parse('{"deviceId":"d1","sensorType":"temperature","value":-1e999}')).toEqual({ ok: false, reason: 'INVALID_VALUE' });
  });

  it('clamps a timestamp slightly ahead to the arrival time, and takes a missing one as arrival', () => {
    expect(parse(json({ timestamp: NOW + 1500 }))).toMatchObject({ ok: true, clamped: true, reading: { timestamp: NOW } });
    expect(parse('{"deviceId":"d1","sensorType":"temperature","value":1}')).toMatchObject({ ok: true, clamped: false, reading: { timestamp: NOW } });
  });

  it('refuses a payload whose device is not the one its topic names', () => {
    expect(parse(json({}), 'd2')).toEqual({ ok: false, reason: 'DEVICE_MISMATCH' });
  });
});
