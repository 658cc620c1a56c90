export {
  RuntimeClient,
  CLOSE_STEP_MS,
  DEFAULT_READY_TIMEOUT_MS,
  MAX_BACKOFF_MS,
  type ClientEvents,
  type GenerateOptions,
  type RequestOptions,
  type RestartInfo,
  type RestartPolicy,
  type RuntimeExitInfo,
  type SpawnOptions,
} from "./client.js";
export { Generation, type GenerationResult } from "./generation.js";
export { RpcError, RuntimeExitedError, RuntimeTimeoutError, StreamError, type ExitStatus } from "./errors.js";
export { buildEnv, DEFAULT_ENV_ALLOW_LIST } from "./env.js";
export type { RuntimeNotification } from "./session.js";
export * from "./protocol.js";
