/**
 * What a stranger may send on `/ws/live-audio` before the connection is authenticated: a few small frames (the
 * auth frame, and what a client pipelines behind it), while it reads our replies. Every frame counts, whatever
 * it holds, and is checked here before anything parses it; the first frame past a bound is refused and the
 * connection is closed with 1008 without a reply being built.
 */

export interface PreAuthLimits {
  /** Frames accepted before authentication completes (`LIVE_AUDIO_WS_PREAUTH_MAX_FRAMES`). */
  maxFrames: number;
  /** Largest frame accepted before authentication, bytes (`LIVE_AUDIO_WS_PREAUTH_MAX_BYTES`). */
  maxFrameBytes: number;
  /** A frame that arrives while more than this many bytes of our replies are unread is refused. */
  maxUnreadBytes: number;
}

/**
 * Why a connection was refused before authentication:
 * - `frame_too_large`: a frame over `maxFrameBytes` (never parsed);
 * - `too_many_frames`: more than `maxFrames` frames before authentication completed;
 * - `replies_unread`: a frame while our replies pile up unread;
 * - `not_auth`: the first frame (or one not behind a pending auth frame) is not an auth message.
 */
export type PreAuthRefusal = 'frame_too_large' | 'too_many_frames' | 'replies_unread' | 'not_auth';

/** The close reason (≤ 123 bytes) the client sees with code 1008. */
export const PREAUTH_CLOSE_REASONS: Record<PreAuthRefusal, string> = {
  frame_too_large: 'Message too large before authentication',
  too_many_frames: 'Too many messages before authentication',
  replies_unread: 'Replies not read',
  not_auth: 'Authentication required',
};

/** Replies unread before authentication: `connected` and an `auth_*` answer are a few hundred bytes. */
export const PREAUTH_MAX_UNREAD_BYTES = 4096;

/** The pre-authentication frame budget of one connection. */
export class PreAuthGate {
  private frames = 0;

  constructor(private readonly limits: PreAuthLimits) {}

  /** Frames seen before authentication (refused ones included). */
  get framesSeen(): number {
    return this.frames;
  }

  /** Counts one frame of `frameBytes` arriving while `unreadBytes` of our replies wait; a refusal, or undefined. */
  admit(frameBytes: number, unreadBytes: number): PreAuthRefusal | undefined {
    this.frames++;
    if (frameBytes > this.limits.maxFrameBytes) return 'frame_too_large';
    if (this.frames > this.limits.maxFrames) return 'too_many_frames';
    if (unreadBytes > this.limits.maxUnreadBytes) return 'replies_unread';
    return undefined;
  }
}
