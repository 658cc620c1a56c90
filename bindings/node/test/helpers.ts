import { existsSync } from "node:fs";
import { RuntimeClient, type SpawnOptions } from "../src/index.js";

const VENV_RUNTIME = "/work/main/.venv/bin/runtime";

/** $MLX_RPC_RUNTIME_COMMAND, else the repo's venv runtime when present, else "runtime" on PATH. */
export function runtimeCommand(): string {
  return process.env.MLX_RPC_RUNTIME_COMMAND || (existsSync(VENV_RUNTIME) ? VENV_RUNTIME : "runtime");
}

export const MODEL_ID = "tiny-chat";
/** Long enough to abort: EOS ids 0 and 2 suppressed. */
export const ENDLESS = { max_tokens: 20000, logit_bias: { "0": -100, "2": -100 } };
/** A short deterministic length-limited generation. */
export const SHORT = { max_tokens: 16, logit_bias: { "0": -100, "2": -100 }, seed: 7 };
export const TEST_TIMEOUT = { timeout: 60_000 };

export interface TestRuntime {
  client: RuntimeClient;
  logs: string[];
}

export async function spawnRuntime(options: SpawnOptions = {}): Promise<TestRuntime> {
  const logs: string[] = [];
  const client = await RuntimeClient.spawn({
    command: runtimeCommand(),
    readyTimeoutMs: 30_000,
    onLog: (line) => logs.push(line),
    ...options,
  });
  return { client, logs };
}

/** A fake runtime: sh writes `script`'s output; `ready` is a runtime/ready line. */
export function fakeRuntime(script: string): SpawnOptions {
  return { command: "sh", args: ["-c", script] };
}

export const READY_LINE = JSON.stringify({
  jsonrpc: "2.0",
  method: "runtime/ready",
  params: { version: "0", protocol: "json-rpc-2.0", mlx_version: "0", backend: "cpu", device: "fake", capabilities: [] },
});

/** Resolves once `predicate` holds, polling; rejects after `ms`. */
export async function waitUntil(predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
