import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import {
  RuntimeClient,
  RuntimeExitedError,
  RuntimeTimeoutError,
  type RestartInfo,
  type RuntimeExitInfo,
} from "../src/index.js";
import { ENDLESS, fakeRuntime, MODEL_ID, READY_LINE, spawnRuntime, TEST_TIMEOUT, waitUntil } from "./helpers.js";

test("close() shuts the runtime down cleanly within the bound", TEST_TIMEOUT, async () => {
  const { client } = await spawnRuntime();
  const exits: RuntimeExitInfo[] = [];
  client.on("exit", (info) => exits.push(info));
  const started = Date.now();
  const status = await client.close();
  assert.ok(Date.now() - started < 2_000, "closed within the first 2 s step");
  assert.deepEqual({ code: status.code, signal: status.signal }, { code: 0, signal: null });
  await waitUntil(() => exits.length === 1);
  assert.equal(exits[0]?.expected, true);
  assert.equal(exits[0]?.willRestart, false);
  assert.equal(client.running, false);
  await assert.rejects(client.state(), RuntimeExitedError);
});

test("shutdown() answers success and the process exits 0", TEST_TIMEOUT, async () => {
  const { client } = await spawnRuntime();
  assert.deepEqual(await client.shutdown(), { success: true });
  const status = await client.waitForExit(2_000);
  assert.deepEqual(status, { code: 0, signal: null });
});

test("a runtime killed mid-stream fails the stream and pending calls", TEST_TIMEOUT, async () => {
  const { client } = await spawnRuntime();
  const exited = once(client, "exit") as Promise<[RuntimeExitInfo]>;
  await client.loadModel({ model_id: MODEL_ID });
  const generation = client.generate({ model_id: MODEL_ID, prompt: "Once", ...ENDLESS });
  const iterator = generation[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).done, false);
  const pid = client.pid!;
  process.kill(pid, "SIGSTOP"); // so this call cannot be answered before the kill
  // A call that takes the runtime over a second (mlx-vlm's import) even if a thread of it runs on
  // for a moment before the stop lands on every thread.
  const pending = client.loadModel({ model_id: "tiny-vlm" });
  process.kill(pid, "SIGKILL");
  const clear = /runtime exited with signal SIGKILL/;
  await assert.rejects(pending, (error: unknown) => error instanceof RuntimeExitedError && clear.test(error.message));
  await assert.rejects(generation.result, clear);
  await assert.rejects(async () => {
    for (let step = await iterator.next(); !step.done; step = await iterator.next());
  }, clear);
  const [info] = await exited;
  assert.deepEqual([info.signal, info.expected, info.willRestart], ["SIGKILL", false, false]);
  await assert.rejects(client.info(), clear);
  assert.equal((await client.close()).signal, "SIGKILL");
});

test("restart policy starts a fresh runtime (models are not reloaded)", TEST_TIMEOUT, async () => {
  const { client } = await spawnRuntime({ restart: { maxRestarts: 1, backoffMs: 50 } });
  await client.loadModel({ model_id: MODEL_ID });
  const firstPid = client.pid!;
  const restarted = once(client, "restart") as Promise<[RestartInfo]>;
  const exited = once(client, "exit") as Promise<[RuntimeExitInfo]>;
  process.kill(firstPid, "SIGKILL");
  assert.equal((await exited)[0].willRestart, true);
  const state = await client.state(); // waits for the restart
  const [restart] = await restarted;
  assert.notEqual(restart.pid, firstPid);
  assert.equal(client.pid, restart.pid);
  assert.deepEqual(state.loaded_models, []);
  const lastExit = once(client, "exit") as Promise<[RuntimeExitInfo]>;
  process.kill(restart.pid!, "SIGKILL");
  assert.equal((await lastExit)[0].willRestart, false, "maxRestarts is used up");
  await assert.rejects(client.state(), RuntimeExitedError);
  assert.equal(client.restartCount, 1);
});

test("readiness timeout kills a command that never becomes ready", TEST_TIMEOUT, async () => {
  const started = Date.now();
  await assert.rejects(
    RuntimeClient.spawn({ command: "sleep", args: ["30"], readyTimeoutMs: 1_000 }),
    (error: unknown) => error instanceof RuntimeTimeoutError && /did not become ready within 1000 ms/.test(error.message),
  );
  assert.ok(Date.now() - started < 3_000, "rejected close to readyTimeoutMs");
});

test("a runtime that exits before ready rejects spawn with its stderr", TEST_TIMEOUT, async () => {
  await assert.rejects(
    RuntimeClient.spawn(fakeRuntime("echo 'no model for you' >&2; exit 3")),
    /runtime exited with code 3[\s\S]*no model for you/,
  );
  await assert.rejects(RuntimeClient.spawn({ command: "/nonexistent/runtime" }), /runtime failed to start.*ENOENT/);
});

test("non-JSON stdout lines and stderr lines go to onLog", TEST_TIMEOUT, async () => {
  const logs: string[] = [];
  const script = `echo 'not json'; echo "log line" >&2; echo '${READY_LINE}'; exec cat >/dev/null`;
  const client = await RuntimeClient.spawn({ ...fakeRuntime(script), onLog: (line) => logs.push(line) });
  assert.equal(client.readyParams?.device, "fake");
  assert.deepEqual(await client.close(), { code: 0, signal: null });
  assert.ok(logs.includes("log line"));
  assert.ok(logs.some((line) => line.includes("warning: non-JSON line on stdout: not json")));
});

test("close() escalates to SIGKILL when the runtime ignores shutdown and SIGTERM", TEST_TIMEOUT, async () => {
  const client = await RuntimeClient.spawn(fakeRuntime(`trap '' TERM; echo '${READY_LINE}'; exec sleep 30`));
  const pending = client.state();
  const started = Date.now();
  const status = await client.close();
  assert.equal(status.signal, "SIGKILL");
  assert.ok(Date.now() - started < 6_000, "bounded by 2 s + 2 s + SIGKILL");
  await assert.rejects(pending, /runtime exited with signal SIGKILL/);
});

test("timeoutMs rejects a call the runtime never answers", TEST_TIMEOUT, async () => {
  const client = await RuntimeClient.spawn(fakeRuntime(`echo '${READY_LINE}'; exec cat >/dev/null`));
  await assert.rejects(
    client.request("runtime/state", {}, { timeoutMs: 200 }),
    (error: unknown) => error instanceof RuntimeTimeoutError && /runtime\/state got no answer within 200 ms/.test(error.message),
  );
  assert.deepEqual(await client.close(), { code: 0, signal: null });
});
