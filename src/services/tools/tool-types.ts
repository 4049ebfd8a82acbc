/** Tool calls as they cross the upstream seam (issue 16). Plain JSON. */

/** One function call the model asked for (`toolCall.functionCalls[]`). */
export interface ToolCallRequest {
  id: string;
  name: string;
  args: Record<string, unknown>;
}

/** `scheduling` of a non-blocking function's answer (models-and-setup.md §3). */
export type ToolResponseScheduling = 'silent' | 'when_idle' | 'interrupt';

/** One answer for the model (`toolResponse.functionResponses[]`). */
export interface ToolCallAnswer {
  id: string;
  name: string;
  response: Record<string, unknown>;
  scheduling?: ToolResponseScheduling;
}

/** What `groundingMetadata` says about a grounded reply: the searches made and the pages used. */
export interface GroundingInfo {
  queries: string[];
  sources: { uri: string; title?: string }[];
}
