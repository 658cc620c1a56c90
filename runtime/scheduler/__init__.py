"""Pure-Python scheduling state machines (no MLX, no protocol)."""
