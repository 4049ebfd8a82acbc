import type { Principal } from '../../services/auth/principal';
import type { LiveAudioService } from '../../services/live-audio-service';
import type { Logger } from '../../util/logger';
import type { ClientMessageOf, ClientMessageType } from '../../contracts/ws-client-messages';
import type { RelaySlot } from '../relay-slot';
import type { SocketSender } from '../socket-sender';
import type { WsRateLimits } from '../../services/limits/ws-rate-limits-adapter';

/** A connection's numbers, shown in `session_status`. */
export interface ConnectionStats {
  id: string;
  bufferedAmount: number;
  sentMessages: number;
  droppedAudioMessages: number;
  droppedAudioBytes: number;
  maxBufferedAmount: number;
  keepAliveOnClose: boolean;
}

/** What a message handler may use of its connection. */
export interface MessageContext {
  readonly service: LiveAudioService;
  readonly rateLimits: WsRateLimits;
  readonly sender: Pick<SocketSender, 'send'>;
  readonly log: Logger;
  /** The session this connection relays. */
  readonly slot: RelaySlot;
  /** Sends `err` to the client as an `error` message (and logs it when it is not a client error). */
  reportError(err: unknown, sessionId?: string | null): void;
  /** False once the connection is closing or closed; a handler that awaited checks it before going on. */
  isOpen(): boolean;
  /** Starts work that outlives its message (audio waiting for the decoder), counted for inbound flow control. */
  track(start: () => Promise<unknown>): void;
  connectionStats(): ConnectionStats;
}

/** The client messages that need an authenticated connection (all but the auth messages). */
export type SessionMessageType = Exclude<ClientMessageType, 'auth' | 'api_key' | 'bearer'>;

/** Handles one message of type `T` from an authenticated `owner`; a thrown error becomes an `error` message. */
export type MessageHandler<T extends SessionMessageType> = (
  ctx: MessageContext,
  owner: Principal,
  msg: ClientMessageOf<T>,
) => void | Promise<void>;
