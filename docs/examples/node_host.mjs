// A Node (or Electron main-process) app embedding mlx-rpc-runtime: spawn, load, stream, abort.
// Run: PATH=$PWD/.venv/bin:$PATH node docs/examples/node_host.mjs   (after bash scripts/setup.sh)
import { RuntimeClient } from "../../bindings/node/dist/src/index.js";

const runtime = await RuntimeClient.spawn({ onLog: () => {} });
try {
  await runtime.loadModel({ model_id: "tiny-chat" });
  const story = runtime.generate({
    model_id: "tiny-chat", max_tokens: 60, temperature: 0.7, seed: 1,
    messages: [{ role: "user", content: "Tell me a story about a cat." }],
  });
  for await (const entry of story) process.stdout.write(entry.token);
  const result = await story.result;
  console.log(`\n[${result.tokensGenerated} tokens, finish: ${result.finishReason}]`);

  const controller = new AbortController();
  const endless = runtime.generate(
    { model_id: "tiny-chat", prompt: "Once upon a time", max_tokens: 5000 },
    { signal: controller.signal },
  );
  for await (const _entry of endless) controller.abort(); // the runtime stops the stream for real
  console.log(`[stopped early: ${(await endless.result).finishReason}]`);
} finally {
  await runtime.close();
}
