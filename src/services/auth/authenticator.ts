import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../../util/logger';
import { redactText, silentLogger } from '../../util/logger';
import { API_KEY_PREFIX } from './api-key';
import { ApiKeyStore, type ApiKeyStoreOptions } from './api-key-store';
import { JwtVerifier } from './jwt';
import type { Authenticator, Credential, CredentialKind, Principal } from './principal';

/** Longest credential we even look at (a JWT is at most a few hundred bytes; keys are 67). */
const MAX_CREDENTIAL_LENGTH = 8192;

export interface AuthServiceOptions {
  /** API key store; null/absent: every API key is invalid. */
  keyStore?: ApiKeyStore | null;
  /** JWT verifier; null/absent: every bearer token is invalid. */
  jwt?: JwtVerifier | null;
  log?: Logger;
}

/** The principal of an API key named `name`. */
export function apiKeyPrincipal(name: string, maxTokensPerDay?: number): Principal {
  return {
    id: `key:${name}`,
    userId: `key:${name}`,
    username: name,
    authMethod: 'api_key',
    ...(maxTokensPerDay !== undefined ? { maxTokensPerDay } : {}),
  };
}

/**
 * The {@link Authenticator} used by REST and WebSocket: `api_key` credentials go to the key store, `bearer`
 * credentials to the JWT verifier. Never throws and never logs credential material.
 */
export class AuthService implements Authenticator {
  readonly keyStore: ApiKeyStore | null;
  readonly jwt: JwtVerifier | null;
  private readonly log: Logger;

  constructor(opts: AuthServiceOptions = {}) {
    this.keyStore = opts.keyStore ?? null;
    this.jwt = opts.jwt ?? null;
    this.log = (opts.log ?? silentLogger).child({ component: 'auth' });
  }

  /** True when bearer tokens can succeed (a JWT secret of at least 32 characters is configured). */
  get jwtEnabled(): boolean {
    return this.jwt?.enabled ?? false;
  }

  async authenticate(cred: Credential): Promise<Principal | null> {
    try {
      if (!cred || typeof cred !== 'object') return null;
      const { kind, token } = cred as { kind?: unknown; token?: unknown };
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_CREDENTIAL_LENGTH) {
        this.log.debug({ authMethod: kind === 'api_key' ? 'api_key' : 'jwt', reason: 'malformed' }, 'credential rejected');
        return null;
      }
      if (kind === 'api_key') {
        if (!this.keyStore) return null;
        const r = await this.keyStore.check(token);
        if (!r.ok) {
          if (r.reason === 'leaked') {
            this.log.warn({ authMethod: 'api_key', reason: r.reason }, 'a publicly leaked API key was presented and refused');
          } else {
            this.log.debug({ authMethod: 'api_key', reason: r.reason }, 'API key rejected');
          }
          return null;
        }
        return apiKeyPrincipal(r.name, r.maxTokensPerDay);
      }
      if (kind === 'bearer') {
        return this.jwt ? this.jwt.verify(token) : null;
      }
      return null;
    } catch (e) {
      // Only the error's (redacted) message: the credential itself is never logged.
      this.log.warn({ errMessage: redactText(String((e as Error)?.message ?? e)) }, 'authentication failed with an error');
      return null;
    }
  }
}

export interface CreateAuthenticatorOptions {
  /** Raw `LIVE_AUDIO_API_KEYS` (`name:key,…`). A bad entry throws `ApiKeyConfigError` (no key in the message). */
  apiKeys?: string;
  /** Key file path (`LIVE_AUDIO_API_KEYS_FILE`), default `.live-audio/api-keys.json`. */
  apiKeysFile?: string;
  /** `JWT_SECRET`; shorter than 32 characters or absent disables JWT auth. */
  jwtSecret?: string | null;
  log?: Logger;
  /** Key file mtime check interval, default 1000 ms. */
  reloadIntervalMs?: number;
  /** Cluster mode: the shared keys (Redis) and how long a read of them is trusted (see `ApiKeyStoreOptions`). */
  shared?: ApiKeyStoreOptions['shared'];
  sharedCacheMs?: number;
}

/** Builds the key store, the JWT verifier and the combined authenticator from explicit options. */
export function createAuthenticator(opts: CreateAuthenticatorOptions = {}): AuthService {
  const keyStore = new ApiKeyStore({
    envKeys: opts.apiKeys,
    filePath: opts.apiKeysFile,
    log: opts.log,
    reloadIntervalMs: opts.reloadIntervalMs,
    ...(opts.shared ? { shared: opts.shared, sharedCacheMs: opts.sharedCacheMs } : {}),
  });
  const jwt = new JwtVerifier({ secret: opts.jwtSecret, log: opts.log });
  return new AuthService({ keyStore, jwt, log: opts.log });
}

/**
 * The credential kind of a WebSocket token (query `?token=`, `auth` message). An explicit hint wins:
 * `api_key`/`apikey`/`api-key` → api_key, `bearer`/`jwt` → bearer (case-insensitive). Without a (known) hint:
 * tokens starting with `ak_` are API keys, everything else is a bearer token (JWT).
 */
export function detectCredentialKind(token: string, hint?: string | null): CredentialKind {
  if (typeof hint === 'string') {
    const h = hint.trim().toLowerCase();
    if (h === 'api_key' || h === 'apikey' || h === 'api-key') return 'api_key';
    if (h === 'bearer' || h === 'jwt') return 'bearer';
  }
  return typeof token === 'string' && token.startsWith(API_KEY_PREFIX) ? 'api_key' : 'bearer';
}

function headerValue(v: string | string[] | undefined): string | undefined {
  if (Array.isArray(v)) return v.length ? v.join(', ') : undefined;
  return v;
}

/**
 * The credential carried by request headers, with the old backend's precedence: a non-empty `X-API-Key` first,
 * else `Authorization: Bearer <token>` (scheme case-insensitive); null when neither is present. Used by the REST
 * middleware and the WebSocket upgrade.
 */
export function extractHeaderCredential(headers: IncomingHttpHeaders): Credential | null {
  const apiKey = headerValue(headers['x-api-key'])?.trim();
  if (apiKey) return { kind: 'api_key', token: apiKey };
  const authz = headerValue(headers.authorization)?.trim();
  if (authz) {
    const m = /^bearer\s+(.+)$/i.exec(authz);
    const token = m?.[1]?.trim();
    if (token) return { kind: 'bearer', token };
  }
  return null;
}
