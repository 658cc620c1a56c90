"""mlx-rpc-runtime: serve MLX models to a host over line-delimited JSON-RPC 2.0 on stdio.

Importing this package must stay cheap and must never import mlx: the stdout guard and the BLAS
preload have to run first (see runtime.cli).
"""

__version__ = "0.1.0"
PROTOCOL = "json-rpc-2.0"
