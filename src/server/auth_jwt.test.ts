import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenError } from '../core/auth.js';
import { JwtVerifier } from './auth_jwt.js';

const SECRET = 'a-test-secret-of-some-length';
const secretKey = new TextEncoder().encode(SECRET);

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (err) {
    return err instanceof TokenError ? err.reason : 'other';
  }
}

describe('JwtVerifier', () => {
  let jwksServer: Server;
  let jwksUrl: string;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    ec = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });

  afterAll(() => {
    jwksServer.close();
  });

  it('verifies HS256 connection tokens with sub, exp, info and channels', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET });
    const token = await new SignJWT({ info: { name: 'Alice' }, channels: ['chat:a'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setExpirationTime('1h')
      .sign(secretKey);
    const claims = await verifier.verifyConnection(token);
    expect(claims.user).toBe('alice');
    expect(JSON.parse(claims.info ?? 'null')).toEqual({ name: 'Alice' });
    expect(claims.channels).toEqual(['chat:a']);
    expect(claims.expiresAt).toBeGreaterThan(Date.now());
  });

  it('tells expired tokens from invalid ones', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET });
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(secretKey);
    expect(await reason(verifier.verifyConnection(expired))).toBe('expired');
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(new TextEncoder().encode('another-secret-entirely'));
    expect(await reason(verifier.verifyConnection(forged))).toBe('invalid');
    expect(await reason(verifier.verifyConnection(new UnsecuredJWT({}).setSubject('a').encode()))).toBe('invalid');
    expect(await reason(verifier.verifyConnection('a.b.c'))).toBe('invalid');
    const early = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setNotBefore(Math.floor(Date.now() / 1000) + 60).sign(secretKey);
    expect(await reason(verifier.verifyConnection(early))).toBe('invalid');
    const badExp = await new SignJWT({ exp: 'tomorrow' } as unknown as { exp: number }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(secretKey);
    expect(await reason(verifier.verifyConnection(badExp))).toBe('invalid');
  });

  it('remembers verified connection tokens until they expire', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setExpirationTime(exp).sign(secretKey);
    expect((await verifier.verifyConnection(token)).user).toBe('a');
    expect((await verifier.verifyConnection(token)).user).toBe('a');
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 100));
    expect(await reason(verifier.verifyConnection(token))).toBe('expired');
  });

  it('keeps connection and subscription tokens apart', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET });
    const sub = await new SignJWT({ channel: 'secret:x', info: { role: 'r' } }).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(secretKey);
    expect(await reason(verifier.verifyConnection(sub))).toBe('invalid');
    expect(await verifier.verifySubscription(sub)).toMatchObject({ user: 'a', channel: 'secret:x' });
    const conn = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(secretKey);
    expect(await reason(verifier.verifySubscription(conn))).toBe('invalid');
  });

  it('verifies RS256 and ES256 with a public key, and refuses HS/RS algorithm confusion', async () => {
    const rsaPem = await exportSPKI(rsa.publicKey);
    const verifier = JwtVerifier.create({ public_key: rsaPem });
    const good = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('bob').sign(rsa.privateKey);
    expect((await verifier.verifyConnection(good)).user).toBe('bob');
    // The classic confusion: an HS256 token signed with the public key's PEM text as the secret.
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('admin').sign(new TextEncoder().encode(rsaPem));
    expect(await reason(verifier.verifyConnection(confused))).toBe('invalid');

    const ecVerifier = JwtVerifier.create({ public_key: await exportSPKI(ec.publicKey) });
    const ecToken = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setSubject('carol').sign(ec.privateKey);
    expect((await ecVerifier.verifyConnection(ecToken)).user).toBe('carol');
    expect(await reason(ecVerifier.verifyConnection(good))).toBe('invalid');
  });

  it('fetches keys from a JWKS URL', async () => {
    const verifier = JwtVerifier.create({ jwks_url: jwksUrl });
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setSubject('dave').sign(ec.privateKey);
    expect((await verifier.verifyConnection(token)).user).toBe('dave');
    const other = await generateKeyPair('ES256');
    const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setSubject('eve').sign(other.privateKey);
    expect(await reason(verifier.verifyConnection(foreign))).toBe('invalid');
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'ec-1' }).setSubject('dave').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(ec.privateKey);
    expect(await reason(verifier.verifyConnection(expired))).toBe('expired');
  });

  it('refuses tokens whose header is not a JSON object as malformed', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET });
    const segment = (text: string): string => Buffer.from(text).toString('base64url');
    for (const token of ['', 'no-dots', '.a.b', `${segment('[1]')}.e30.sig`, `${segment('"HS256"')}.e30.sig`, `${segment('null')}.e30.sig`, `${segment('{"alg":')}.e30.sig`]) {
      await expect(verifier.verifyConnection(token)).rejects.toMatchObject({ reason: 'invalid', message: 'malformed token' });
    }
    // A header without alg names no key.
    expect(await reason(verifier.verifyConnection(`${segment('{}')}.e30.sig`))).toBe('invalid');
  });

  it('checks audience and issuer when configured', async () => {
    const verifier = JwtVerifier.create({ hmac_secret: SECRET, audience: 'relais', issuer: 'https://auth.example' });
    const right = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setAudience('relais').setIssuer('https://auth.example').sign(secretKey);
    expect((await verifier.verifyConnection(right)).user).toBe('a');
    const wrong = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setAudience('other').setIssuer('https://auth.example').sign(secretKey);
    expect(await reason(verifier.verifyConnection(wrong))).toBe('invalid');
  });
});
