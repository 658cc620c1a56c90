import { StreamError } from "./errors.js";
import type { FinishReason, StreamChunkParams, StreamEventParams, StreamStatsParams, TokenEntry } from "./protocol.js";
import type { StreamSink } from "./session.js";

/** What a finished stream produced. */
export interface GenerationResult {
  streamId: string;
  /** Every token's text, concatenated. */
  text: string;
  /** `stats.tokens_generated`, or the number of token entries received when there are no stats. */
  tokensGenerated: number;
  stats: StreamStatsParams | null;
  finishReason: FinishReason;
  /** Structured output only: the mode and whether the output is whole (false: cut short, do not parse). */
  guidance?: StreamEventParams["guidance"];
  /** Structured JSON output that is whole: the parsed value. */
  parsed?: unknown;
  /** Chat streams: the answer's whole text (thinking and tool calls apart). */
  content?: string;
  /** Chat streams: the whole thinking text. */
  reasoning?: string;
  /** Chat streams: the complete tool calls, arguments parsed (finishReason "tool_calls"). */
  toolCalls?: StreamEventParams["tool_calls"];
  /** Chat streams: tool-call sections that did not parse. */
  toolCallErrors?: StreamEventParams["tool_call_errors"];
}

/**
 * One stream: iterate it (once) for its token entries; `result` settles when the final `stream.event` arrives.
 * The iterator ends normally for every `completed` event (including `cancelled`), and throws for an
 * `error` event or when the runtime exits. Leaving a `for await` loop early cancels the stream.
 */
export class Generation implements AsyncIterable<TokenEntry>, StreamSink {
  readonly result: Promise<GenerationResult>;
  readonly streamId: Promise<string>;
  private queue: TokenEntry[] = [];
  private readonly text: string[] = [];
  private statsParams: StreamStatsParams | null = null;
  private id: string | undefined;
  private finished = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private cancelHook: (() => void) | undefined;
  private cancelRequested = false;
  private resolveResult!: (result: GenerationResult) => void;
  private rejectResult!: (error: Error) => void;
  private resolveId!: (id: string) => void;
  private rejectId!: (error: Error) => void;

  constructor() {
    this.result = new Promise((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    this.streamId = new Promise((resolve, reject) => {
      this.resolveId = resolve;
      this.rejectId = reject;
    });
    // The caller may use only one of them: never report the other as an unhandled rejection.
    this.result.catch(() => undefined);
    this.streamId.catch(() => undefined);
  }

  get done(): boolean {
    return this.finished || this.failure !== undefined;
  }

  /** Stop the stream in the runtime (once it is started); it then ends with finish reason "cancelled". */
  cancel(): void {
    if (this.done || this.cancelRequested) return;
    this.cancelRequested = true;
    this.cancelHook?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TokenEntry, void, undefined> {
    try {
      for (;;) {
        const batch = this.queue;
        this.queue = [];
        yield* batch;
        if (batch.length > 0) continue;
        if (this.failure) throw this.failure;
        if (this.finished) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      this.cancel();
    }
  }

  // --- fed by the client -------------------------------------------------------------------------

  /** The runtime accepted the stream; `cancel` is how to stop it there. */
  started(streamId: string, cancel: () => void): void {
    this.id = streamId;
    this.cancelHook = cancel;
    this.resolveId(streamId);
    if (this.cancelRequested) cancel();
  }

  chunk(params: StreamChunkParams): void {
    for (const entry of params.tokens) this.text.push(entry.token);
    this.queue.push(...params.tokens);
    this.signal();
  }

  stats(params: StreamStatsParams): void {
    this.statsParams = params;
  }

  end(params: StreamEventParams): void {
    if (params.event === "error") {
      const message = params.error ?? "generation failed";
      return this.fail(new StreamError(params.stream_id, message, params.finish_reason));
    }
    this.finished = true;
    this.resolveResult({
      streamId: params.stream_id,
      text: this.text.join(""),
      tokensGenerated: this.statsParams?.tokens_generated ?? this.text.length,
      stats: this.statsParams,
      finishReason: params.finish_reason,
      ...(params.guidance !== undefined ? { guidance: params.guidance } : {}),
      ...("parsed" in params ? { parsed: params.parsed } : {}),
      ...(params.content !== undefined ? { content: params.content } : {}),
      ...(params.reasoning !== undefined ? { reasoning: params.reasoning } : {}),
      ...(params.tool_calls !== undefined ? { toolCalls: params.tool_calls } : {}),
      ...(params.tool_call_errors !== undefined ? { toolCallErrors: params.tool_call_errors } : {}),
    });
    this.signal();
  }

  fail(error: Error): void {
    if (this.done) return;
    this.failure = error;
    if (this.id === undefined) this.rejectId(error);
    this.rejectResult(error);
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
