"""The engine: everything that touches MLX. It never imports the protocol layer."""
