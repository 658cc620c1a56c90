"""asyncio client for mlx-rpc-runtime: spawn `runtime --stdio` and drive it like a host.

async with RuntimeClient.spawn() as rt:
    await rt.load_model("tiny-chat")
    async for token in rt.generate({"model_id": "tiny-chat", "prompt": "Once upon a time"}):
        print(token["token"], end="")
"""

from mlx_rpc_client.client import Generation, RpcError, RuntimeClient, RuntimeExited

__all__ = ["Generation", "RpcError", "RuntimeClient", "RuntimeExited"]
