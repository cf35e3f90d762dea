/**
 * CPU per token verification for a reconnect storm: every token is new to the verifier
 * (no verified-token cache helps), HS256 and RS256. Compares jose through WebCrypto (what
 * Relais used), fast-jwt's synchronous verifier, and Relais's JwtVerifier as configured.
 *
 *   node --import tsx bench/jwt/run.ts [--tokens 5000]
 */
import { createHmac, generateKeyPairSync, createSign, webcrypto } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createVerifier } from 'fast-jwt';
import { importSPKI, jwtVerify } from 'jose';
import { JwtVerifier } from '../../src/server/auth_jwt.js';

const { values } = parseArgs({ options: { tokens: { type: 'string', default: '5000' } } });
const COUNT = Number(values.tokens);
const SECRET = 'a-bench-secret-of-a-realistic-length-0123456789';

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

function hs256(sub: string): string {
  const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600, info: { n: sub } }))}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
function rs256(sub: string): string {
  const head = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }))}`;
  return `${head}.${createSign('RSA-SHA256').update(head).sign(rsa.privateKey).toString('base64url')}`;
}

async function measure(label: string, tokens: readonly string[], verify: (token: string) => unknown): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const token of tokens) await verify(token);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / tokens.length;
  process.stdout.write(`${label.padEnd(38)} ${cpuUs.toFixed(1).padStart(7)} µs CPU/token  ${((wall * 1000) / tokens.length).toFixed(1).padStart(7)} µs wall/token\n`);
}

const hsTokens = Array.from({ length: COUNT }, (_, i) => hs256(`user-${i}`));
const rsTokens = Array.from({ length: Math.min(COUNT, 2000) }, (_, i) => rs256(`user-${i}`));
const hmacKey = await webcrypto.subtle.importKey('raw', new TextEncoder().encode(SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
const rsaKey = await importSPKI(rsaPublicPem, 'RS256');
const fastHs = createVerifier({ key: SECRET, algorithms: ['HS256'], cache: false });
const fastRs = createVerifier({ key: rsaPublicPem, algorithms: ['RS256'], cache: false });
const relaisHs = JwtVerifier.create({ hmac_secret: SECRET });
const relaisRs = JwtVerifier.create({ public_key: rsaPublicPem });

process.stdout.write(`${COUNT} HS256 and ${rsTokens.length} RS256 tokens, each new to the verifier; node ${process.version}\n`);
for (let round = 1; round <= 2; round++) {
  process.stdout.write(`round ${round}\n`);
  await measure('HS256 jose (WebCrypto, async)', hsTokens, (t) => jwtVerify(t, hmacKey, { algorithms: ['HS256'] }));
  await measure('HS256 fast-jwt (sync)', hsTokens, (t) => fastHs(t));
  await measure('HS256 Relais JwtVerifier', hsTokens.map((t) => `${t}`), (t) => relaisHs.verifyConnection(t));
  await measure('RS256 jose (WebCrypto, async)', rsTokens, (t) => jwtVerify(t, rsaKey, { algorithms: ['RS256'] }));
  await measure('RS256 fast-jwt (sync)', rsTokens, (t) => fastRs(t));
  await measure('RS256 Relais JwtVerifier', rsTokens, (t) => relaisRs.verifyConnection(t));
  // A second round of the same tokens through Relais hits its verified-token cache.
}
