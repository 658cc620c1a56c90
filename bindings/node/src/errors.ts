import type { FinishReason } from "./protocol.js";

/** A JSON-RPC error answered by the runtime (`code`, `message` and `data` as on the wire). */
export class RpcError extends Error {
  override readonly name = "RpcError";

  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    readonly method?: string,
  ) {
    super(message);
  }
}

/** How a runtime process ended. `error` is set when it could not be started at all. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The runtime process is gone: every pending call and open stream of that process fails with this. */
export class RuntimeExitedError extends Error {
  override readonly name = "RuntimeExitedError";
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;

  constructor(status: ExitStatus, detail?: string) {
    super(describeExit(status) + (detail ? `: ${detail}` : ""));
    this.code = status.code;
    this.signal = status.signal;
  }
}

/** A bounded wait ran out (readiness, or a request's `timeoutMs`). */
export class RuntimeTimeoutError extends Error {
  override readonly name = "RuntimeTimeoutError";
}

/** A stream ended with `stream.event` `event: "error"`. */
export class StreamError extends Error {
  override readonly name = "StreamError";

  constructor(
    readonly streamId: string,
    message: string,
    readonly finishReason: FinishReason = "error",
  ) {
    super(message);
  }
}

export function describeExit(status: ExitStatus): string {
  if (status.error) return `runtime failed to start (${status.error.message})`;
  if (status.signal) return `runtime exited with signal ${status.signal}`;
  return `runtime exited with code ${status.code}`;
}
