"""A Python app embedding mlx-rpc-runtime: spawn it, load the embedded model, stream, stop early.

Run: .venv/bin/python docs/examples/python_host.py
"""

import asyncio

from mlx_rpc_client import RuntimeClient


async def main() -> None:
    async with RuntimeClient.spawn(on_log=lambda line: None) as runtime:
        await runtime.load_model("tiny-chat")
        story = runtime.generate(
            {
                "model_id": "tiny-chat",
                "max_tokens": 60,
                "temperature": 0.7,
                "seed": 1,
                "messages": [{"role": "user", "content": "Tell me a story about a cat."}],
            }
        )
        async for token in story:
            print(token["token"], end="", flush=True)
        result = await story.result()
        print(f"\n[{result['stats']['tokens_generated']} tokens, finish: {result['finish_reason']}]")

        endless = runtime.generate({"model_id": "tiny-chat", "prompt": "Once upon a time", "max_tokens": 5000})
        async for _ in endless:
            break  # leaving the loop cancels the stream in the runtime
        print(f"[stopped early: {(await endless.result())['finish_reason']}]")


asyncio.run(main())
