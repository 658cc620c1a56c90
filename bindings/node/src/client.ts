import { EventEmitter } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import { buildEnv, DEFAULT_ENV_ALLOW_LIST } from "./env.js";
import { RuntimeExitedError, RuntimeTimeoutError, type ExitStatus } from "./errors.js";
import { Generation, type GenerationResult } from "./generation.js";
import type { ProcessConfig } from "./process.js";
import type {
  BatchCheckDraftResult,
  CheckDraftParams,
  CheckDraftResult,
  CountTokensParams,
  CountTokensResult,
  EmbedParams,
  EmbedResult,
  GenerateParams,
  GenerateResult,
  LoadModelParams,
  LoadModelResult,
  Methods,
  ModelsListResult,
  RerankParams,
  RerankResult,
  RuntimeInfoResult,
  RuntimeReadyParams,
  RuntimeStateResult,
  RuntimeMetricsParams,
  RuntimeMetricsResult,
  SetDraftParams,
  SetDraftResult,
  ShutdownParams,
  ShutdownResult,
  TokenizeParams,
  TokenizeResult,
  UnloadModelResult,
} from "./protocol.js";
import { LOG_PREFIX, Session, type RuntimeNotification } from "./session.js";

export interface RestartPolicy {
  /** Restarts allowed over the client's whole life. */
  maxRestarts: number;
  /** Wait before restart n (1-based) is backoffMs * 2^(n-1), at most MAX_BACKOFF_MS. */
  backoffMs: number;
}

export interface SpawnOptions {
  /** Default: $MLX_RPC_RUNTIME_COMMAND, else "runtime" (looked up on PATH). */
  command?: string;
  /** Default: ["--stdio"]. Given args replace the default, so include "--stdio". */
  args?: string[];
  /** Added to the allow-listed part of process.env (and wins over it). */
  env?: Record<string, string>;
  /** Names from process.env passed to the runtime; a trailing "*" is a prefix. Default: DEFAULT_ENV_ALLOW_LIST. */
  envAllowList?: readonly string[];
  cwd?: string;
  /** How long to wait for the runtime/ready notification (default 30000); the child is killed after it. */
  readyTimeoutMs?: number;
  /** Every stderr line of the runtime, and this client's warnings (prefixed "[mlx-rpc-runtime-client]"). */
  onLog?: (line: string) => void;
  /** Restart a runtime that exits unexpectedly. Loaded models are NOT reloaded in the new process. */
  restart?: RestartPolicy;
  /** Called whenever a runtime process exits (same as the "exit" event). */
  onExit?: (info: RuntimeExitInfo) => void;
}

export interface RuntimeExitInfo extends ExitStatus {
  pid: number | undefined;
  /** The client was closing (close() or shutdown() was called). */
  expected: boolean;
  /** A new process will be started (restart policy). */
  willRestart: boolean;
  /** The error pending calls and open streams of that process were rejected with. */
  error: RuntimeExitedError;
}

export interface RestartInfo {
  attempt: number;
  pid: number | undefined;
  ready: RuntimeReadyParams;
}

export interface RequestOptions {
  /** Reject with RuntimeTimeoutError when no answer came in time (default: wait until the process exits). */
  timeoutMs?: number;
}

export interface GenerateOptions {
  /** Aborting sends `cancel`; the stream then ends normally with finish reason "cancelled". */
  signal?: AbortSignal;
}

export type ClientEvents = {
  exit: [RuntimeExitInfo];
  restart: [RestartInfo];
  notification: [RuntimeNotification];
};

export const DEFAULT_READY_TIMEOUT_MS = 30_000;
export const MAX_BACKOFF_MS = 30_000;
/** Each step of close(): after shutdown + closing stdin, after SIGTERM, after SIGKILL. */
export const CLOSE_STEP_MS = 2_000;

interface ClientConfig {
  process: ProcessConfig;
  readyTimeoutMs: number;
  onLog?: (line: string) => void;
  onExit?: (info: RuntimeExitInfo) => void;
  restart?: RestartPolicy;
}

/**
 * A host-side client for one mlx-rpc-runtime child process (line-delimited JSON-RPC 2.0 over stdio).
 * Events: "exit" (a runtime process ended), "restart" (a new one is ready), "notification" (every
 * notification the runtime sends, e.g. model.progress).
 */
export class RuntimeClient extends EventEmitter<ClientEvents> {
  private session: Session;
  private restarting: Promise<void> | undefined;
  private restarts = 0;
  private closing = false;
  private stopping: Promise<ExitStatus> | undefined;
  private readonly closeSignal = new AbortController();

  private constructor(private readonly config: ClientConfig) {
    super();
    this.session = this.openSession();
  }

  /** Start the runtime and wait for its runtime/ready notification. */
  static async spawn(options: SpawnOptions = {}): Promise<RuntimeClient> {
    const client = new RuntimeClient(resolveConfig(options));
    await client.awaitReady(client.session);
    client.supervise(client.session);
    return client;
  }

  /** The current child's pid. */
  get pid(): number | undefined {
    return this.session.process.pid;
  }

  /** The current child's runtime/ready params. */
  get readyParams(): RuntimeReadyParams | undefined {
    return this.session.readyParams;
  }

  get running(): boolean {
    return this.session.alive;
  }

  get restartCount(): number {
    return this.restarts;
  }

  // --- calls -------------------------------------------------------------------------------------

  /**
   * A typed JSON-RPC call. Errors answered by the runtime reject with RpcError. "$/cancelRequest" is
   * sent as a notification and resolves null at once.
   */
  request<M extends keyof Methods>(
    method: M,
    params?: Methods[M]["params"],
    options: RequestOptions = {},
  ): Promise<Methods[M]["result"]> {
    return this.call(method, params, options) as Promise<Methods[M]["result"]>;
  }

  info(): Promise<RuntimeInfoResult> {
    return this.request("runtime/info");
  }

  state(): Promise<RuntimeStateResult> {
    return this.request("runtime/state");
  }

  /** `runtime/metrics`: counters, histograms and gauges as JSON, or as Prometheus text. */
  metrics(params: RuntimeMetricsParams = {}): Promise<RuntimeMetricsResult> {
    return this.request("runtime/metrics", params);
  }

  /** `models/list`: the registry's models and the loaded ones, with state, keep-alive and sizes. */
  listModels(): Promise<ModelsListResult> {
    return this.request("models/list", {});
  }

  loadModel(params: LoadModelParams, options?: RequestOptions): Promise<LoadModelResult> {
    return this.request("load_model", params, options);
  }

  unloadModel(modelId: string, options: { force?: boolean } = {}): Promise<UnloadModelResult> {
    return this.request("unload_model", { model_id: modelId, ...options });
  }

  /** The prompt's tokens as generate builds them (messages in OpenAI or Anthropic shape, with tools). */
  countTokens(params: CountTokensParams): Promise<CountTokensResult> {
    return this.request("count_tokens", params);
  }

  /** Vectors of one or many inputs from an embedding model (normalize, dimensions, truncate, pooling, encoding_format). */
  embed(params: EmbedParams): Promise<EmbedResult> {
    return this.request("embed", params, { timeoutMs: 600_000 });
  }

  /** Documents scored against a query by a reranker, most relevant first (top_n, return_documents). */
  rerank(params: RerankParams): Promise<RerankResult> {
    return this.request("rerank", params, { timeoutMs: 600_000 });
  }

  tokenize(params: TokenizeParams): Promise<TokenizeResult> {
    return this.request("tokenize", params);
  }

  /** `check_draft`: can the draft serve the target; with `measure: true`, a measured speed-up and verdict. */
  checkDraft(params: CheckDraftParams): Promise<CheckDraftResult> {
    return this.request("check_draft", params, { timeoutMs: 600_000 });
  }

  /**
   * `batch_check_draft`: several checkDraft params at once. `results` holds one
   * `{success, result, error, code?, data?}` per request, in order: a bad entry fails alone.
   */
  batchCheckDraft(params: { requests: CheckDraftParams[] }): Promise<BatchCheckDraftResult> {
    return this.request("batch_check_draft", params, { timeoutMs: 600_000 });
  }

  /** `set_draft`: pair a target with a draft (null unpairs); its requests then decode speculatively. */
  setDraft(params: SetDraftParams): Promise<SetDraftResult> {
    return this.request("set_draft", params);
  }

  /** Ask the runtime to shut down (it answers, then exits 0). No restart follows. */
  shutdown(params: ShutdownParams = {}): Promise<ShutdownResult> {
    this.markClosing();
    return this.request("shutdown", params);
  }

  // --- streams -----------------------------------------------------------------------------------

  /**
   * Start a stream. Iterate the returned Generation for token entries; await `.result` for the text,
   * stats and finish reason. A signal that is already aborted fails it with the abort reason.
   */
  generate(params: GenerateParams, options: GenerateOptions = {}): Generation {
    const generation = new Generation();
    const { signal } = options;
    if (signal?.aborted) {
      generation.fail(abortReason(signal));
      return generation;
    }
    if (signal) {
      const onAbort = (): void => generation.cancel();
      const cleanup = (): void => signal.removeEventListener("abort", onAbort);
      signal.addEventListener("abort", onAbort, { once: true });
      generation.result.then(cleanup, cleanup);
    }
    this.withSession((session) =>
      session.call("generate", params, { onResult: (result) => this.attach(session, generation, result) }),
    ).catch((error: Error) => generation.fail(error));
    return generation;
  }

  /** The whole generation at once (no token iteration). */
  generateText(params: GenerateParams, options: GenerateOptions = {}): Promise<GenerationResult> {
    return this.generate(params, options).result;
  }

  // --- ending ------------------------------------------------------------------------------------

  /**
   * Bounded stop: send shutdown and close stdin, wait up to 2 s; SIGTERM, wait up to 2 s; SIGKILL.
   * Resolves with how the process ended; never hangs. No restart follows.
   */
  close(): Promise<ExitStatus> {
    this.markClosing();
    const session = this.session;
    if (session.process.exitStatus) return Promise.resolve(session.process.exitStatus);
    this.stopping ??= this.stop(session);
    return this.stopping;
  }

  /** The current process's exit status, or undefined if it is still running after `timeoutMs`. */
  waitForExit(timeoutMs: number): Promise<ExitStatus | undefined> {
    return this.session.process.waitForExit(timeoutMs);
  }

  // --- internals ---------------------------------------------------------------------------------

  private call(method: string, params?: object, options: RequestOptions = {}): Promise<unknown> {
    if (method.startsWith("$/")) {
      return this.withSession(async (session) => {
        session.notify(method, params); // "$/" methods are notifications: no answer comes
        return null;
      });
    }
    return this.withSession((session) => session.call(method, params, options));
  }

  /** Runs `use` on a live session; waits out a restart in progress; rejects if the runtime is gone. */
  private withSession<T>(use: (session: Session) => Promise<T>): Promise<T> {
    const session = this.session;
    if (session.alive && !this.restarting) return use(session);
    return this.liveSession().then(use);
  }

  private async liveSession(): Promise<Session> {
    for (;;) {
      const session = this.session;
      if (session.alive && !this.restarting) return session;
      if (this.restarting) {
        await this.restarting;
        continue;
      }
      const error = await session.closed; // its exit handling (maybe a restart) has run by now
      if (!this.restarting && session === this.session) throw error;
    }
  }

  private async stop(session: Session): Promise<ExitStatus> {
    session.call("shutdown", {}).catch(() => undefined);
    const status = await session.process.stop(CLOSE_STEP_MS);
    await session.closed; // every call and stream of it has failed by now
    return status;
  }

  private attach(session: Session, generation: Generation, result: unknown): void {
    const streamId = (result as GenerateResult).stream_id;
    generation.started(streamId, () => this.cancelStream(session, streamId));
    session.attach(streamId, generation);
  }

  private cancelStream(session: Session, streamId: string): void {
    session.call("cancel", { stream_id: streamId }).catch((error: Error) => {
      if (!(error instanceof RuntimeExitedError)) this.log(`${LOG_PREFIX} warning: cancel ${streamId}: ${error.message}`);
    });
  }

  private openSession(): Session {
    return new Session(this.config.process, {
      log: (line) => this.log(line),
      notification: (notification) => this.emit("notification", notification),
    });
  }

  /** Waits for runtime/ready within readyTimeoutMs; on failure the child is killed (and reaped, bounded). */
  private async awaitReady(session: Session): Promise<RuntimeReadyParams> {
    const ms = this.config.readyTimeoutMs;
    const timer = new AbortController();
    const timeout = delay(ms, undefined, { signal: timer.signal }).then(() => {
      const what = `${this.config.process.command} ${this.config.process.args.join(" ")}`;
      throw session.withStderr(new RuntimeTimeoutError(`runtime (${what}) did not become ready within ${ms} ms`));
    });
    try {
      return await Promise.race([session.ready, timeout]);
    } catch (error) {
      session.process.signal("SIGKILL");
      await session.process.waitForExit(CLOSE_STEP_MS);
      throw error;
    } finally {
      timer.abort();
      timeout.catch(() => undefined);
    }
  }

  private supervise(session: Session): void {
    void session.closed.then((error) => this.onExit(session, error));
  }

  private onExit(session: Session, error: RuntimeExitedError): void {
    if (session !== this.session) return;
    const willRestart = !this.closing && this.restarts < (this.config.restart?.maxRestarts ?? 0);
    if (willRestart) this.restarting = this.restart().finally(() => (this.restarting = undefined));
    const status = session.process.exitStatus!;
    this.reportExit({ ...status, pid: session.process.pid, expected: this.closing, willRestart, error });
  }

  private reportExit(info: RuntimeExitInfo): void {
    try {
      this.config.onExit?.(info);
      this.emit("exit", info);
    } catch (error) {
      this.log(`${LOG_PREFIX} warning: exit listener threw: ${String(error)}`);
    }
  }

  /** Start fresh processes until one is ready or the policy is used up. Models are not reloaded. */
  private async restart(): Promise<void> {
    const policy = this.config.restart!;
    while (!this.closing && this.restarts < policy.maxRestarts) {
      this.restarts += 1;
      if (!(await this.backoff(policy.backoffMs * 2 ** (this.restarts - 1)))) return;
      const session = (this.session = this.openSession());
      try {
        const ready = await this.awaitReady(session);
        this.supervise(session);
        this.emit("restart", { attempt: this.restarts, pid: session.process.pid, ready });
        return;
      } catch (error) {
        this.log(`${LOG_PREFIX} warning: restart ${this.restarts} failed: ${(error as Error).message}`);
      }
    }
  }

  /** False when close() interrupted the wait. */
  private async backoff(ms: number): Promise<boolean> {
    try {
      await delay(Math.min(ms, MAX_BACKOFF_MS), undefined, { signal: this.closeSignal.signal });
      return !this.closing;
    } catch {
      return false;
    }
  }

  private markClosing(): void {
    this.closing = true;
    this.closeSignal.abort();
  }

  private log(line: string): void {
    this.config.onLog?.(line);
  }
}

function resolveConfig(options: SpawnOptions): ClientConfig {
  return {
    process: {
      command: options.command ?? (process.env.MLX_RPC_RUNTIME_COMMAND || "runtime"),
      args: options.args ?? ["--stdio"],
      env: buildEnv(options.envAllowList ?? DEFAULT_ENV_ALLOW_LIST, options.env),
      cwd: options.cwd,
    },
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    onLog: options.onLog,
    onExit: options.onExit,
    restart: options.restart,
  };
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException("The generation was aborted", "AbortError");
}
