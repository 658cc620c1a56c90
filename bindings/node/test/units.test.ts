import assert from "node:assert/strict";
import { test } from "node:test";
import { buildEnv, DEFAULT_ENV_ALLOW_LIST } from "../src/index.js";
import { LineSplitter } from "../src/lines.js";

test("buildEnv passes only allow-listed variables, then options.env", { timeout: 5_000 }, () => {
  const source = { PATH: "/bin", SECRET_TOKEN: "x", RUNTIME_MAX_QUEUED: "3", OPENBLAS_NUM_THREADS: "1", HOME: "/h" };
  assert.deepEqual(buildEnv(DEFAULT_ENV_ALLOW_LIST, { EXTRA: "1", HOME: "/other" }, source), {
    PATH: "/bin",
    RUNTIME_MAX_QUEUED: "3",
    OPENBLAS_NUM_THREADS: "1",
    HOME: "/other",
    EXTRA: "1",
  });
  assert.deepEqual(buildEnv(["PATH"], {}, source), { PATH: "/bin" });
});

test("LineSplitter joins lines across chunks and keeps the unterminated rest", { timeout: 5_000 }, () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push('{"a":'), []);
  assert.deepEqual(splitter.push('1}\n{"b":2}\n{"c"'), ['{"a":1}', '{"b":2}']);
  assert.deepEqual(splitter.push(":3}\n\n"), ['{"c":3}', ""]);
  assert.deepEqual(splitter.push("tail"), []);
  assert.deepEqual(splitter.flush(), ["tail"]);
});
