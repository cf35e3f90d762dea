import { describe, expect, it } from 'vitest';
import { DEV_API_KEY } from '../config/defaults.js';
import { apiKey, describeError, httpBaseUrl, websocketUrl } from './endpoints.js';

describe('CLI endpoints', () => {
  it('takes the server URL from --url, then RELAIS_URL, then PORT, in either form', () => {
    expect(httpBaseUrl(undefined, {})).toBe('http://127.0.0.1:8000');
    expect(httpBaseUrl(undefined, { PORT: '9000' })).toBe('http://127.0.0.1:9000');
    expect(httpBaseUrl(undefined, { RELAIS_URL: 'https://relais.example/', PORT: '9000' })).toBe('https://relais.example');
    expect(httpBaseUrl('ws://h:1/connection/websocket', { RELAIS_URL: 'http://other' })).toBe('http://h:1');
    expect(httpBaseUrl('wss://h/prefix/connection/websocket', {})).toBe('https://h/prefix');
    expect(websocketUrl(undefined, {})).toBe('ws://127.0.0.1:8000/connection/websocket');
    expect(websocketUrl('https://h', {})).toBe('wss://h/connection/websocket');
    expect(websocketUrl('ws://h:2/custom', {})).toBe('ws://h:2/custom');
    expect(() => websocketUrl('not a url', {})).toThrow(/--url "not a url" is not a URL/);
    expect(() => httpBaseUrl('ftp://h', {})).toThrow(/unsupported URL scheme/);
  });

  it('uses RELAIS_API_KEY, the development key outside production, and nothing in production', () => {
    expect(apiKey({ RELAIS_API_KEY: 'k' })).toBe('k');
    expect(apiKey({})).toBe(DEV_API_KEY);
    expect(() => apiKey({ NODE_ENV: 'production' })).toThrow(/RELAIS_API_KEY is required/);
  });

  it('describes SDK rejections and errors', () => {
    expect(describeError({ code: 1, message: 'timeout' })).toBe('timeout (code 1)');
    expect(describeError(new Error('boom'))).toBe('boom');
    expect(describeError('x')).toBe('x');
  });
});
