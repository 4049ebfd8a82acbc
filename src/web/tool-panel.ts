import type { PlainError, ToolCallView } from './types';

/**
 * The page's function-call panel (issue 16 §8): parses the declarations typed in the "Tools" box, and lists the
 * calls the model is waiting on, each with a JSON box and an Answer button, so a tool can be tried by hand.
 */

/** The declarations box: empty → none; else a JSON array of `{name, description?, parameters?, behavior?}`. */
export function parseToolDeclarations(text: string): { tools?: unknown[]; error?: string } {
  const t = text.trim();
  if (!t) return {};
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { error: 'The tools box is not valid JSON.' };
  }
  if (!Array.isArray(v)) return { error: 'The tools box must hold a JSON array of function declarations.' };
  return { tools: v };
}

/** An answer typed by hand: a JSON object, or any other text taken as `{ "output": text }`. */
export function parseAnswer(text: string): Record<string, unknown> {
  const t = text.trim();
  try {
    const v: unknown = JSON.parse(t);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    return { output: v };
  } catch {
    return { output: t };
  }
}

export class ToolPanel {
  constructor(
    private readonly list: HTMLOListElement,
    private readonly answer: (id: string, response: Record<string, unknown>) => Promise<void>,
    private readonly onError: (e: PlainError) => void,
  ) {}

  /** Shows exactly the calls waiting now (a call answered, cancelled or timed out disappears). */
  render(pending: ToolCallView[]): void {
    const keep = new Set(pending.map((c) => c.id));
    for (const li of Array.from(this.list.children) as HTMLElement[]) if (!keep.has(li.dataset.callId ?? '')) li.remove();
    for (const c of pending) {
      if (this.list.querySelector(`[data-call-id="${CSS.escape(c.id)}"]`)) continue;
      this.list.append(this.item(c));
    }
    this.show(pending.length > 0);
  }

  clear(): void {
    this.list.replaceChildren();
    this.show(false);
  }

  /** The list and its heading (the element just before it) show only while calls wait. */
  private show(on: boolean): void {
    this.list.hidden = !on;
    const title = this.list.previousElementSibling;
    if (title instanceof HTMLElement) title.hidden = !on;
  }

  private item(c: ToolCallView): HTMLLIElement {
    const li = document.createElement('li');
    li.dataset.callId = c.id;
    li.dataset.testid = 'tool-call';
    const title = document.createElement('p');
    title.className = 'tool-name';
    title.textContent = `${c.name}(${JSON.stringify(c.args)})`;
    const box = document.createElement('textarea');
    box.rows = 2;
    box.dataset.testid = 'tool-answer';
    box.placeholder = '{"output": "…"} or plain text';
    box.setAttribute('aria-label', `Answer for ${c.name}`);
    const send = document.createElement('button');
    send.type = 'button';
    send.textContent = 'Answer';
    send.dataset.testid = 'tool-answer-send';
    send.addEventListener('click', () => {
      send.disabled = true;
      this.answer(c.id, parseAnswer(box.value)).then(
        () => li.remove(),
        (err: unknown) => {
          send.disabled = false;
          const plain = (err as { plain?: PlainError }).plain;
          this.onError(plain ?? { message: err instanceof Error ? err.message : String(err) });
        },
      );
    });
    li.append(title, box, send);
    return li;
  }
}
