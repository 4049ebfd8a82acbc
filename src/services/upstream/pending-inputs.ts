import type { Logger } from '../../util/logger';
import type { ToolCallAnswer } from '../tools/tool-types';
import type { UpstreamConnection } from './upstream-types';

export type PendingInput =
  | { kind: 'text'; text: string }
  | { kind: 'image'; data: Buffer; mimeType: 'image/jpeg' | 'image/png' }
  | { kind: 'toolResponse'; answers: ToolCallAnswer[] };

const MAX_PENDING_INPUTS = 32;

export function deliverInput(conn: UpstreamConnection, input: PendingInput): void {
  if (input.kind === 'text') conn.sendText(input.text);
  else if (input.kind === 'image') conn.sendImage(input.data, input.mimeType);
  else conn.sendToolResponse(input.answers);
}

/**
 * Typed text, images and an `audioStreamEnd` that came while no connection was ready, held (text and images
 * bounded, oldest dropped first) for the next connection.
 */
export class PendingInputs {
  private inputs: PendingInput[] = [];
  private streamEnd = false;

  constructor(private readonly log: Logger) {}

  hold(input: PendingInput): void {
    this.inputs.push(input);
    if (this.inputs.length > MAX_PENDING_INPUTS) {
      // Tool answers are never dropped for room (the session bounds them: one per pending call).
      const i = this.inputs.findIndex((x) => x.kind !== 'toolResponse');
      if (i >= 0) {
        this.inputs.splice(i, 1);
        this.log.warn('upstream down: dropped the oldest queued text/image input');
      }
    }
  }

  /**
   * Takes the tool answers still waiting out of the queue (a fresh, non-resumed connection does not expect them):
   * returns their call ids.
   */
  takeToolResponses(): string[] {
    const ids: string[] = [];
    this.inputs = this.inputs.filter((x) => {
      if (x.kind !== 'toolResponse') return true;
      ids.push(...x.answers.map((a) => a.id));
      return false;
    });
    return ids;
  }

  holdStreamEnd(): void {
    this.streamEnd = true;
  }

  /** Forgets a stream end still waiting. */
  cancelStreamEnd(): void {
    this.streamEnd = false;
  }

  /** Sends what waited: the inputs in order, then the stream end. */
  deliver(conn: UpstreamConnection): void {
    const inputs = this.inputs;
    this.inputs = [];
    for (const input of inputs) deliverInput(conn, input);
    if (this.streamEnd) {
      this.streamEnd = false;
      conn.sendAudioStreamEnd();
    }
  }

  clear(): void {
    this.inputs = [];
    this.streamEnd = false;
  }
}
