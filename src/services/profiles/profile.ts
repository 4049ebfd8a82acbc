import type { SessionOptionField, SessionOptions } from '../session-setup/session-options';

/** The option values a profile supplies when a request leaves them out. */
export type ProfileDefaults = Omit<SessionOptions, 'profile'>;

/**
 * A named profile: defaults for the per-session options, some of which it may lock (a locked option present in
 * a request is a 400 `PROFILE_LOCKED`). `default` holds the server-wide settings; `interview` and `transcribe` are
 * built in; a profiles file adds more or overrides them.
 */
export interface Profile {
  name: string;
  description?: string;
  defaults: ProfileDefaults;
  locked: SessionOptionField[];
  source: 'builtin' | 'server' | 'file';
}
