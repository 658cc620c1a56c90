import { RpcError, RuntimeExitedError, RuntimeTimeoutError, type ExitStatus } from "./errors.js";
import { RuntimeProcess, type ProcessConfig } from "./process.js";
import type {
  Notifications,
  RuntimeReadyParams,
  StreamChunkParams,
  StreamEventParams,
  StreamStatsParams,
} from "./protocol.js";

/** A notification from the runtime, typed by its method. */
export type RuntimeNotification = {
  [M in keyof Notifications]: { method: M; params: Notifications[M] };
}[keyof Notifications];

/** Receives one stream's notifications, in order; `end` or `fail` comes last. */
export interface StreamSink {
  chunk(params: StreamChunkParams): void;
  stats(params: StreamStatsParams): void;
  end(params: StreamEventParams): void;
  fail(error: Error): void;
}

export interface SessionHooks {
  log(line: string): void;
  notification(notification: RuntimeNotification): void;
}

export interface CallOptions {
  timeoutMs?: number;
  /** Runs synchronously when the result line is read, before any later line (used to attach streams). */
  onResult?: (result: unknown) => void;
}

interface PendingCall {
  method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
  onResult?: (result: unknown) => void;
  timer?: NodeJS.Timeout;
}

interface Orphan {
  messages: RuntimeNotification[];
  timer: NodeJS.Timeout;
}

type JsonObject = Record<string, unknown>;

export const LOG_PREFIX = "[mlx-rpc-runtime-client]";
/** How long notifications for a stream id nobody has attached yet are kept. */
const ORPHAN_TTL_MS = 5000;
const STDERR_TAIL = 20;

/** JSON-RPC over one runtime process: calls, readiness, stream routing; everything fails when it exits. */
export class Session {
  readonly process: RuntimeProcess;
  readonly ready: Promise<RuntimeReadyParams>;
  /** Resolves when the process is gone and every call and stream of it has been failed. */
  readonly closed: Promise<RuntimeExitedError>;
  readyParams: RuntimeReadyParams | undefined;
  exitError: RuntimeExitedError | undefined;
  private readonly pending = new Map<number, PendingCall>();
  private readonly streams = new Map<string, StreamSink>();
  private readonly orphans = new Map<string, Orphan>();
  private readonly stderrTail: string[] = [];
  private nextId = 1;
  private fatal: string | undefined;
  private markReady!: (params: RuntimeReadyParams) => void;
  private failReady!: (error: Error) => void;

  constructor(config: ProcessConfig, private readonly hooks: SessionHooks) {
    this.ready = new Promise<RuntimeReadyParams>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => undefined);
    this.process = new RuntimeProcess(config, {
      stdoutLine: (line) => this.receive(line),
      stderrLine: (line) => this.stderr(line),
      warning: (message) => this.warn(message),
    });
    this.closed = this.process.exited.then((status) => this.shutDown(status));
  }

  get alive(): boolean {
    return this.exitError === undefined && this.process.alive;
  }

  /** The last stderr lines, for error messages. */
  recentStderr(): string {
    return this.stderrTail.join("\n");
  }

  call(method: string, params?: object, options: CallOptions = {}): Promise<unknown> {
    if (this.exitError) return Promise.reject(this.exitError);
    const id = this.nextId++;
    let line: string;
    try {
      line = JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const call: PendingCall = { method, resolve, reject, onResult: options.onResult };
      this.pending.set(id, call);
      if (options.timeoutMs !== undefined) call.timer = this.startTimer(id, call, options.timeoutMs);
      if (!this.write(line)) {
        this.settle(id, call)?.reject(this.exitError ?? new Error(`runtime stdin is closed; ${method} not sent`));
      }
    });
  }

  notify(method: string, params?: object): boolean {
    return this.write(JSON.stringify({ jsonrpc: "2.0", method, ...(params === undefined ? {} : { params }) }));
  }

  /** Route a stream's notifications to `sink`, starting with any that arrived before it was attached. */
  attach(streamId: string, sink: StreamSink): void {
    if (this.exitError) return sink.fail(this.exitError);
    this.streams.set(streamId, sink);
    const orphan = this.orphans.get(streamId);
    if (!orphan) return;
    clearTimeout(orphan.timer);
    this.orphans.delete(streamId);
    orphan.messages.forEach((message) => this.routeStream(streamId, message));
  }

  private write(line: string): boolean {
    return this.alive && this.process.writeLine(line);
  }

  private startTimer(id: number, call: PendingCall, ms: number): NodeJS.Timeout {
    return setTimeout(() => {
      if (!this.settle(id, call)) return;
      if (call.method === "generate") this.notify("$/cancelRequest", { id });
      call.reject(new RuntimeTimeoutError(`${call.method} got no answer within ${ms} ms`));
    }, ms);
  }

  /** Removes a pending call; returns it if it was still pending. */
  private settle(id: number, call: PendingCall): PendingCall | undefined {
    if (this.pending.get(id) !== call) return undefined;
    this.pending.delete(id);
    clearTimeout(call.timer);
    return call;
  }

  // --- reading -----------------------------------------------------------------------------------

  private receive(line: string): void {
    if (line.trim() === "") return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.warn(`non-JSON line on stdout: ${line}`);
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.dispatch(item);
  }

  private dispatch(message: unknown): void {
    if (!isObject(message)) return this.warn(`unexpected JSON on stdout: ${JSON.stringify(message)}`);
    if (typeof message.method === "string") return this.onNotification(message as RuntimeNotification);
    if ("id" in message) return this.onResponse(message);
    this.warn(`unexpected message on stdout: ${JSON.stringify(message)}`);
  }

  private onResponse(message: JsonObject): void {
    const id = message.id;
    const call = typeof id === "number" ? this.pending.get(id) : undefined;
    if (call === undefined || !this.settle(id as number, call)) {
      return this.warn(`response to no pending request (id ${JSON.stringify(id)}): ${JSON.stringify(message)}`);
    }
    const error = message.error;
    if (isObject(error)) {
      call.reject(new RpcError(Number(error.code), String(error.message ?? "error"), error.data, call.method));
      return;
    }
    call.onResult?.(message.result);
    call.resolve(message.result);
  }

  private onNotification(notification: RuntimeNotification): void {
    if (notification.method === "runtime/ready") {
      this.readyParams = notification.params;
      this.markReady(notification.params);
    } else if (notification.method === "runtime/fatal") {
      this.fatal = notification.params.error;
    } else if (notification.method.startsWith("stream.")) {
      const streamId = (notification.params as { stream_id?: unknown }).stream_id;
      if (typeof streamId === "string") this.routeStream(streamId, notification);
      else this.warn(`stream notification without stream_id: ${JSON.stringify(notification)}`);
    }
    this.hooks.notification(notification);
  }

  private routeStream(streamId: string, notification: RuntimeNotification): void {
    const sink = this.streams.get(streamId);
    if (!sink) return this.keepOrphan(streamId, notification);
    if (notification.method === "stream.chunk") sink.chunk(notification.params);
    else if (notification.method === "stream.stats") sink.stats(notification.params);
    else if (notification.method === "stream.event") {
      this.streams.delete(streamId);
      sink.end(notification.params);
    }
  }

  private keepOrphan(streamId: string, notification: RuntimeNotification): void {
    const orphan = this.orphans.get(streamId);
    if (orphan) return void orphan.messages.push(notification);
    const timer = setTimeout(() => {
      const dropped = this.orphans.get(streamId)?.messages.length ?? 0;
      this.orphans.delete(streamId);
      this.warn(`dropped ${dropped} notification(s) for stream ${streamId}: no generate call owns it`);
    }, ORPHAN_TTL_MS);
    timer.unref();
    this.orphans.set(streamId, { messages: [notification], timer });
  }

  private stderr(line: string): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL) this.stderrTail.shift();
    this.hooks.log(line);
  }

  private warn(message: string): void {
    this.hooks.log(`${LOG_PREFIX} warning: ${message}`);
  }

  // --- ending ------------------------------------------------------------------------------------

  private shutDown(status: ExitStatus): RuntimeExitedError {
    const error = new RuntimeExitedError(status, this.fatal);
    this.exitError = error;
    if (!this.readyParams) this.failReady(this.withStderr(new RuntimeExitedError(status, this.fatal)));
    for (const [id, call] of this.pending) this.settle(id, call)?.reject(error);
    for (const sink of this.streams.values()) sink.fail(error);
    this.streams.clear();
    for (const orphan of this.orphans.values()) clearTimeout(orphan.timer);
    this.orphans.clear();
    return error;
  }

  /** The same error with the last stderr lines appended (for failures before readiness). */
  withStderr<E extends Error>(error: E): E {
    const tail = this.recentStderr();
    if (tail) error.message += `\nlast runtime stderr:\n${tail}`;
    return error;
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
