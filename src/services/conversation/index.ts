/** Conversations: per-session transcripts fed by upstream events, and where they are kept. */
export * from './transcript-types';
export * from './transcript';
export * from './transcript-store';
export * from './session-conversation';
export * from './conversation-archive';
