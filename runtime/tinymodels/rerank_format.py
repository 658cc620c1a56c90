"""The Qwen3-Reranker input format, shared by the tiny reranker's training and the runtime.

The strings are the runtime's own (runtime/requests/pooling.py), so training and serving agree byte
for byte. The score is softmax([logit("no"), logit("yes")])[1] at the last position of
`PREFIX + format_body(...) + SUFFIX`.
"""

from __future__ import annotations

# The runtime owns the format (requests/pooling.py builds every rerank prompt from these strings).
from runtime.requests.pooling import DEFAULT_INSTRUCTION, rerank_body
from runtime.requests.pooling import RERANK_PREFIX as PREFIX
from runtime.requests.pooling import RERANK_SUFFIX as SUFFIX

__all__ = ["DEFAULT_INSTRUCTION", "NO_TOKEN", "PREFIX", "SUFFIX", "YES_TOKEN", "format_body", "format_pair"]

YES_TOKEN = "yes"
NO_TOKEN = "no"


def format_body(query: str, document: str, instruction: str | None = None) -> str:
    """The user turn between PREFIX and SUFFIX; `instruction=None` means the default one."""
    return rerank_body(query, document, instruction or DEFAULT_INSTRUCTION)


def format_pair(query: str, document: str, instruction: str | None = None) -> str:
    """The whole text the reranker scores (the model reads its last position)."""
    return PREFIX + format_body(query, document, instruction) + SUFFIX
