import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ERROR_CODES, RpcError, type LoadModelResult, type TokenEntry } from "../src/index.js";
import { ENDLESS, MODEL_ID, SHORT, spawnRuntime, TEST_TIMEOUT, type TestRuntime } from "./helpers.js";

describe("streams against the real runtime", () => {
  let runtime: TestRuntime;
  let loaded: LoadModelResult;

  before(async () => {
    runtime = await spawnRuntime();
    loaded = await runtime.client.loadModel({ model_id: MODEL_ID });
  });

  after(async () => {
    await runtime?.client.close();
  });

  test("runtime/info and load_model", TEST_TIMEOUT, async () => {
    assert.equal(loaded.model_id, MODEL_ID);
    assert.equal(loaded.state, "ready");
    assert.equal(loaded.source, "embedded");
    const info = await runtime.client.info();
    assert.equal(info.protocol, "json-rpc-2.0");
    assert.equal(info.pid, runtime.client.pid);
    const state = await runtime.client.state();
    assert.deepEqual(state.loaded_models.map((m) => m.model_id), [MODEL_ID]);
  });

  test("structured output: the result carries guidance and the parsed value", TEST_TIMEOUT, async () => {
    const schema = {
      type: "object",
      properties: { color: { enum: ["red", "green"] }, count: { type: "integer", minimum: 1, maximum: 9 } },
      required: ["color", "count"],
      additionalProperties: false,
    };
    const generation = runtime.client.generate({
      model_id: MODEL_ID,
      prompt: "Describe it.",
      max_tokens: 60,
      temperature: 0.8,
      seed: 3,
      guidance: { mode: "json_schema", schema },
    });
    const result = await generation.result;
    assert.equal(result.finishReason, "stop");
    assert.deepEqual(result.guidance, { mode: "json_schema", complete: true });
    assert.deepEqual(result.parsed, JSON.parse(result.text));
    const parsed = result.parsed as { color: string; count: number };
    assert.ok(["red", "green"].includes(parsed.color) && parsed.count >= 1 && parsed.count <= 9);
    await assert.rejects(
      runtime.client.generate({ model_id: MODEL_ID, prompt: "x", guidance: { mode: "regex", pattern: "[a-" } }).result,
      (error: unknown) => error instanceof RpcError && error.code === ERROR_CODES.GuidanceError,
    );
  });

  test("a chat with tools: parsed calls as deltas and in the result; count_tokens agrees", TEST_TIMEOUT, async () => {
    const tools = [
      {
        type: "function" as const,
        function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
      },
    ];
    const messages = [{ role: "user" as const, content: "What is the weather in Paris?" }];
    const generation = runtime.client.generate({
      model_id: MODEL_ID,
      messages,
      tools,
      tool_choice: "required",
      temperature: 0,
      max_tokens: 80,
    });
    const names: string[] = [];
    for await (const entry of generation) {
      assert.ok(!entry.token.includes("tool_call"));
      for (const delta of entry.tool_calls ?? []) if (delta.function.name) names.push(delta.function.name);
    }
    const result = await generation.result;
    assert.equal(result.finishReason, "tool_calls");
    assert.deepEqual(names, ["get_weather"]);
    assert.equal(result.toolCalls?.[0]?.name, "get_weather");
    const counted = await runtime.client.countTokens({ model_id: MODEL_ID, messages, tools });
    assert.equal(counted.input_tokens, result.stats?.prompt_tokens);
  });

  test("listModels shows the model loaded by hand as ready and unregistered", TEST_TIMEOUT, async () => {
    const listed = await runtime.client.listModels();
    const model = listed.models.find((m) => m.model_id === MODEL_ID);
    assert.ok(model);
    assert.equal(model.state, "ready");
    assert.equal(model.registered, false);
    assert.equal(model.keep_alive, "-1");
    assert.equal(listed.default_model, null);
  });

  test("embed and rerank", TEST_TIMEOUT, async () => {
    await runtime.client.loadModel({ model_id: "tiny-embed" });
    await runtime.client.loadModel({ model_id: "tiny-rerank" });
    const embedded = await runtime.client.embed({ model_id: "tiny-embed", input: ["The cat sat.", "Rates rose."] });
    assert.equal(embedded.data.length, 2);
    assert.ok(embedded.usage.prompt_tokens > 0);
    const ranked = await runtime.client.rerank({
      model_id: "tiny-rerank",
      query: "baking bread",
      documents: ["Rates rose.", "Knead the dough and bake it."],
    });
    assert.equal(ranked.results[0]?.index, 1);
    await runtime.client.unloadModel("tiny-embed");
    await runtime.client.unloadModel("tiny-rerank");
  });

  test("tokenize", TEST_TIMEOUT, async () => {
    const result = await runtime.client.tokenize({ model_id: MODEL_ID, text: "Once upon" });
    assert.ok(result.tokens.length > 0);
    assert.equal(result.tokens.length, result.token_strings.length);
  });

  test("streams chunks, then stats, then the completed event", TEST_TIMEOUT, async () => {
    const generation = runtime.client.generate({ model_id: MODEL_ID, prompt: "Once upon a time", ...SHORT });
    const entries: TokenEntry[] = [];
    for await (const entry of generation) entries.push(entry);
    const result = await generation.result;
    assert.equal(entries.length, SHORT.max_tokens);
    for (const entry of entries) {
      assert.equal(typeof entry.token, "string");
      assert.equal(typeof entry.token_id, "number");
    }
    assert.equal(result.finishReason, "length");
    assert.equal(result.text, entries.map((e) => e.token).join(""));
    assert.equal(result.tokensGenerated, SHORT.max_tokens);
    assert.equal(result.stats?.tokens_generated, SHORT.max_tokens);
    assert.equal(result.stats?.finish_reason, "length");
    assert.ok((result.stats?.prompt_tokens ?? 0) > 0);
    assert.equal(result.streamId, await generation.streamId);
  });

  test("generateText returns the text and stats", TEST_TIMEOUT, async () => {
    const result = await runtime.client.generateText({ model_id: MODEL_ID, prompt: "Hello", ...SHORT });
    assert.equal(result.finishReason, "length");
    assert.ok(result.text.length > 0);
    assert.equal(result.stats?.tokens_generated, SHORT.max_tokens);
  });

  test("abort mid-stream cancels it in the runtime", TEST_TIMEOUT, async () => {
    const controller = new AbortController();
    const generation = runtime.client.generate(
      { model_id: MODEL_ID, prompt: "Once upon a time", ...ENDLESS },
      { signal: controller.signal },
    );
    let count = 0;
    for await (const entry of generation) {
      assert.equal(typeof entry.token_id, "number");
      if (++count === 5) controller.abort();
    }
    const result = await generation.result;
    assert.equal(result.finishReason, "cancelled");
    assert.ok(result.tokensGenerated >= 5 && result.tokensGenerated < ENDLESS.max_tokens);
    const state = await runtime.client.state();
    assert.equal(state.active_streams, 0);
    assert.deepEqual(state.streams, []);
  });

  test("abort before the generate answer still cancels the stream", TEST_TIMEOUT, async () => {
    const controller = new AbortController();
    const generation = runtime.client.generate(
      { model_id: MODEL_ID, prompt: "Once", ...ENDLESS },
      { signal: controller.signal },
    );
    controller.abort();
    const result = await generation.result;
    assert.equal(result.finishReason, "cancelled");
    assert.equal((await runtime.client.state()).active_streams, 0);
  });

  test("leaving the loop early cancels the stream", TEST_TIMEOUT, async () => {
    const generation = runtime.client.generate({ model_id: MODEL_ID, prompt: "Once", ...ENDLESS });
    for await (const entry of generation) {
      assert.ok(entry);
      break;
    }
    const result = await generation.result;
    assert.equal(result.finishReason, "cancelled");
    assert.equal((await runtime.client.state()).active_streams, 0);
  });

  test("an already aborted signal fails without starting a stream", TEST_TIMEOUT, async () => {
    const controller = new AbortController();
    controller.abort();
    const generation = runtime.client.generate({ model_id: MODEL_ID, prompt: "x" }, { signal: controller.signal });
    await assert.rejects(generation.result, { name: "AbortError" });
  });

  test("4 concurrent streams with unique ids all finish", TEST_TIMEOUT, async () => {
    const generations = [0, 1, 2, 3].map((i) =>
      runtime.client.generate({ model_id: MODEL_ID, prompt: `Story ${i}:`, ...SHORT, seed: i }),
    );
    const counts = await Promise.all(
      generations.map(async (generation) => {
        let count = 0;
        for await (const _ of generation) count += 1;
        return count;
      }),
    );
    const results = await Promise.all(generations.map((g) => g.result));
    assert.equal(new Set(results.map((r) => r.streamId)).size, 4);
    assert.deepEqual(counts, [16, 16, 16, 16]);
    for (const result of results) {
      assert.equal(result.finishReason, "length");
      assert.equal(result.stats?.tokens_generated, SHORT.max_tokens);
    }
  });

  test("a JSON-RPC error rejects with RpcError (stream and iterator)", TEST_TIMEOUT, async () => {
    const generation = runtime.client.generate({ model_id: "missing", prompt: "x" });
    await assert.rejects(generation.result, (error: unknown) => {
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, ERROR_CODES.ModelNotLoaded);
      assert.deepEqual(error.data, { type: "ModelNotLoaded", model_id: "missing" });
      return true;
    });
    await assert.rejects(async () => {
      for await (const _ of generation) assert.fail("no tokens expected");
    }, RpcError);
  });

  test("checkDraft and setDraft: a verdict, a pairing, then speculative streams", TEST_TIMEOUT, async () => {
    await runtime.client.loadModel({ model_id: "tiny-draft" });
    const verdict = await runtime.client.checkDraft({ primary_id: MODEL_ID, draft_id: "tiny-draft" });
    assert.equal(verdict.compatible, true);
    assert.deepEqual(verdict.errors, []);
    const pairing = await runtime.client.setDraft({ model_id: MODEL_ID, draft_model_id: "tiny-draft" });
    assert.equal(pairing.draft_model_id, "tiny-draft");
    const result = await runtime.client.generate({ model_id: MODEL_ID, prompt: "Once upon a time", ...SHORT }).result;
    assert.equal(result.stats?.draft?.model_id, "tiny-draft");
    await runtime.client.setDraft({ model_id: MODEL_ID, draft_model_id: null });
    await assert.rejects(runtime.client.checkDraft({ primary_id: MODEL_ID, draft_id: "absent" }), (error: unknown) => {
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, ERROR_CODES.ModelNotLoaded);
      return true;
    });
  });

  test("batchCheckDraft: one entry per request, a bad entry fails alone", TEST_TIMEOUT, async () => {
    await runtime.client.loadModel({ model_id: "tiny-draft" });
    const { results } = await runtime.client.batchCheckDraft({
      requests: [
        { primary_id: MODEL_ID, draft_id: "tiny-draft" },
        { primary_id: MODEL_ID, draft_id: "absent" },
      ],
    });
    assert.equal(results.length, 2);
    const [good, missing] = results;
    assert.equal(good.success, true);
    assert.equal(good.error, null);
    assert.equal((good.result as { compatible: boolean }).compatible, true);
    assert.equal(missing.success, false);
    assert.equal(missing.result, null);
    assert.equal(missing.code, ERROR_CODES.ModelNotLoaded);
    assert.deepEqual(missing.data, { type: "ModelNotLoaded", model_id: "absent" });
    const info = await runtime.client.info();
    assert.ok(info.capabilities.includes("batch_check_draft"));
  });

  test("request timeoutMs bounds a call", TEST_TIMEOUT, async () => {
    const state = await runtime.client.request("runtime/state", {}, { timeoutMs: 10_000 });
    assert.equal(state.shutting_down, false);
  });
});
