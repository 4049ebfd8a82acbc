import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { JwtVerifier, MIN_JWT_SECRET_LENGTH } from '../../src/services/auth/jwt';
import { signAccessToken } from '../helpers/jwt';
import { base64url, SECRET } from './helpers';

const payload = { userId: 42, username: 'alice', type: 'access' };

describe('JwtVerifier', () => {
  const v = new JwtVerifier({ secret: SECRET });

  it('accepts a valid HS256 access token and builds the principal', () => {
    expect(v.enabled).toBe(true);
    const token = signAccessToken(SECRET, { userId: 42, username: 'alice' });
    expect(v.verify(token)).toEqual({ id: 'user:42', userId: 42, username: 'alice', authMethod: 'jwt' });
    const t2 = jwt.sign({ userId: 'u-7', username: 'bob', type: 'access' }, SECRET, { expiresIn: 60 });
    expect(v.verify(t2)).toEqual({ id: 'user:u-7', userId: 'u-7', username: 'bob', authMethod: 'jwt' });
  });

  it('honours exp', () => {
    const expired = jwt.sign({ ...payload, exp: Math.floor(Date.now() / 1000) - 10 }, SECRET);
    expect(v.check(expired)).toEqual({ ok: false, reason: 'expired' });
    expect(v.verify(expired)).toBeNull();
    const tolerant = new JwtVerifier({ secret: SECRET, clockToleranceSec: 60 });
    expect(tolerant.verify(expired)).not.toBeNull();
  });

  it('requires type "access"', () => {
    expect(v.check(jwt.sign({ ...payload, type: 'refresh' }, SECRET))).toEqual({ ok: false, reason: 'wrong_type' });
    expect(v.check(jwt.sign({ userId: 1, username: 'x' }, SECRET))).toEqual({ ok: false, reason: 'wrong_type' });
  });

  it('requires a userId', () => {
    expect(v.check(jwt.sign({ username: 'x', type: 'access' }, SECRET))).toEqual({ ok: false, reason: 'bad_payload' });
    expect(v.check(jwt.sign({ userId: {}, username: 'x', type: 'access' }, SECRET))).toEqual({ ok: false, reason: 'bad_payload' });
  });

  it('rejects a token signed with another secret', () => {
    const other = jwt.sign(payload, 'another-secret-that-is-long-enough-123456');
    expect(v.check(other)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('rejects other HMAC algorithms even with the right secret', () => {
    for (const algorithm of ['HS384', 'HS512'] as const) {
      expect(v.check(jwt.sign(payload, SECRET, { algorithm }))).toEqual({ ok: false, reason: 'invalid' });
    }
  });

  it('rejects RS256 tokens', () => {
    // A fixed key (PEM, made once with openssl for the tests), not one generated here: signing with the KeyObject of a
    // pair from generateKeyPairSync once deadlocked Node 20 in CI (a GC inside GetRsaKeyDetail ran ~KeyGenJob, which
    // waited on a lock the same thread held: the jest worker's main thread stuck, per its gdb backtrace).
    const privateKey = fs.readFileSync(path.join(__dirname, '../fixtures/keys/test-only-rsa-2048.pem'), 'utf8');
    const rs = jwt.sign(payload, privateKey, { algorithm: 'RS256' });
    expect(v.check(rs)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('rejects alg "none" (unsigned) tokens, with or without a fake signature', () => {
    const body = base64url({ ...payload, exp: Math.floor(Date.now() / 1000) + 3600 });
    for (const alg of ['none', 'None', 'NONE']) {
      const head = base64url({ alg, typ: 'JWT' });
      expect(v.check(`${head}.${body}.`)).toEqual({ ok: false, reason: 'invalid' });
      expect(v.check(`${head}.${body}.c2ln`)).toEqual({ ok: false, reason: 'invalid' });
    }
    expect(v.check(jwt.sign(payload, null, { algorithm: 'none' }))).toEqual({ ok: false, reason: 'invalid' });
  });

  it('rejects garbage without throwing', () => {
    for (const t of ['', 'abc', 'a.b.c', 'eyJ.eyJ.', 'x'.repeat(10_000), undefined, null, 7, {}]) {
      expect(() => v.verify(t)).not.toThrow();
      expect(v.verify(t)).toBeNull();
    }
  });

  it('is disabled with a secret shorter than 32 characters or none at all', () => {
    const short = 'x'.repeat(MIN_JWT_SECRET_LENGTH - 1);
    const shortV = new JwtVerifier({ secret: short });
    expect(shortV.enabled).toBe(false);
    expect(shortV.check(jwt.sign(payload, short))).toEqual({ ok: false, reason: 'disabled' });
    for (const secret of [undefined, null, '']) {
      const none = new JwtVerifier({ secret });
      expect(none.enabled).toBe(false);
      expect(none.verify(jwt.sign(payload, SECRET))).toBeNull();
    }
    const exact = 'y'.repeat(MIN_JWT_SECRET_LENGTH);
    expect(new JwtVerifier({ secret: exact }).verify(jwt.sign(payload, exact))).not.toBeNull();
    expect(() => signAccessToken(short, { userId: 1, username: 'a' })).toThrow(/at least 32/);
  });
});
