export * from './limit-store';
export * from './fixed-window-limiter';
export * from './audio-estimate';
export * from './limit-errors';
export * from './limits';
export * from './ws-rate-limits-adapter';
