export * from './principal';
export * from './api-key';
export * from './key-file';
export * from './api-key-store';
export * from './jwt';
export * from './authenticator';
export * from './dev-key';
