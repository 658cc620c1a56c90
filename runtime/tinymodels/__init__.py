"""Builders for the project's own tiny models (no model hub needed).

`corpus` writes a deterministic synthetic chat/story corpus, `tokenizer` trains a byte-level BPE on
it, `train` trains a llama-style model with MLX on the CPU, and `fixtures` builds random-weight
models for tests. `python -m runtime.tinymodels --help` runs them.
"""
