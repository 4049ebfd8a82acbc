/** Per-session options → the effective setup (what is sent upstream) → the SDK's LiveConnectConfig. */
export * from './session-options';
export * from './effective-setup';
export * from './resolve-session-setup';
export * from './build-live-connect-config';
