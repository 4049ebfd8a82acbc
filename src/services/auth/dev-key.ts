import type { Logger } from '../../util/logger';
import { silentLogger } from '../../util/logger';
import type { ApiKeyStore } from './api-key-store';

export const DEV_KEY_NAME = 'dev';

export interface DevelopmentKey {
  name: string;
  /** The plain key. Print it once; it is stored only as a hash. */
  key: string;
  filePath: string;
}

export interface EnsureDevelopmentKeyOptions {
  store: ApiKeyStore;
  /** `NODE_ENV`; anything but `production` (including undefined) counts as development. */
  nodeEnv: string | undefined;
  log?: Logger;
}

/**
 * Dev bootstrap: when no API key is configured anywhere (no `LIVE_AUDIO_API_KEYS` entry and no active key in the
 * key file) and this is not production, creates a key named `dev` in the key file and returns it, so the server
 * can print it once. Later starts find it in the file and get null. In production with no keys, returns null
 * (the caller warns that only JWT auth works). The key is never logged here.
 */
export function ensureDevelopmentKey(opts: EnsureDevelopmentKeyOptions): DevelopmentKey | null {
  const log = (opts.log ?? silentLogger).child({ component: 'auth' });
  if (opts.store.hasActiveKeys()) return null;
  if (opts.nodeEnv === 'production') return null;
  const created = opts.store.createKey(DEV_KEY_NAME);
  log.info({ name: created.name, filePath: created.filePath }, 'created a development API key (stored hashed)');
  return { name: created.name, key: created.key, filePath: created.filePath };
}
