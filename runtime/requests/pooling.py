"""embed and rerank params -> token ids ready for the model; pooled rows -> the wire's vectors.

No MLX here (NumPy is imported where vectors are finished). Every refusal names its field:
empty or oversize inputs, too many, token ids outside the vocabulary, a pooling or prompt the model
does not have, `dimensions` past the model's.

Text is framed the way each family expects:
- encoders: the tokenizer's own special tokens around the text ([CLS] text [SEP]);
- decoder embedders (Qwen3-Embedding): the text, then the end-of-text token the last-token pooling
  reads; queries may carry `Instruct: {instruction}\\nQuery:` before them;
- decoder rerankers (Qwen3-Reranker): its fixed chat prompt around
  `<Instruct>: …\\n<Query>: …\\n<Document>: …`, cut at the end when too long;
- cross-encoders: the tokenizer's pair encoding of query and document, the document cut first.
Token-id inputs are taken as they are (no special tokens added), only truncated.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from runtime import faults
from runtime.config import Limits
from runtime.engine.models import LoadedModel
from runtime.engine.pooling import Pooler
from runtime.requests.prompts import check_token_ids

RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
END_OF_TEXT = "<|endoftext|>"
PROMPT_NAMES = ("query", "document")
KIND_NAMES = {"generate": "a text-generation model", "embed": "an embedding model", "rerank": "a reranker"}


def rerank_body(query: str, document: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The user turn of Qwen3-Reranker's prompt (between RERANK_PREFIX and RERANK_SUFFIX)."""
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


@dataclass(frozen=True)
class EmbedPlan:
    """An embed request read: the inputs' token ids, and how their vectors are finished."""

    inputs: list[list[int]]
    truncated: list[int]  # indices of the inputs that were cut to fit
    pooling: str
    normalize: bool
    dimensions: int | None
    encoding: str  # "float" or "base64"


@dataclass(frozen=True)
class RerankPlan:
    inputs: list[list[int]]  # one query-document input per document
    truncated: list[int]
    documents: list[str]
    top_n: int
    return_documents: bool


def require_task(loaded: LoadedModel, task: str, method: str) -> Pooler:
    if loaded.task != task or loaded.pooler is None:
        hint = f"load {KIND_NAMES[task]}"
        if loaded.pooler is None or loaded.pooler.family == "decoder":  # a decoder serves any task
            hint += f', or load this one with task "{task}"'
        what = KIND_NAMES[loaded.task]
        raise faults.InvalidInput.at(
            "/model_id", f"{loaded.model_id} is {what} (task {loaded.task}); {method} needs {KIND_NAMES[task]}: {hint}"
        )
    return loaded.pooler


def embed_plan(limits: Limits, loaded: LoadedModel, params: dict[str, Any]) -> EmbedPlan:
    pooler = require_task(loaded, "embed", "embed")
    pooling = _pooling(pooler, params.get("pooling"))
    dimensions = params.get("dimensions")
    if dimensions is not None and dimensions > pooler.dimensions:
        raise faults.InvalidInput.at(
            "/dimensions", f"{loaded.model_id} makes {pooler.dimensions}-dimensional vectors; asked {dimensions}"
        )
    raw = _inputs(params["input"], limits)
    prefix = _prompt(pooler, params)
    truncate = params.get("truncate", "end")
    frame = _frame(loaded, pooler, pooling)
    encoded = _encode_texts(loaded.tokenizer, [prefix + item for item in raw if isinstance(item, str)])
    inputs, truncated = [], []
    for index, item in enumerate(raw):
        body = item if isinstance(item, list) else next(encoded)
        ids, cut = _embed_ids(loaded, pooler, frame, body, isinstance(item, list), truncate, index)
        inputs.append(ids)
        if cut:
            truncated.append(index)
    return EmbedPlan(
        inputs, truncated, pooling, params.get("normalize", True), dimensions, params.get("encoding_format", "float")
    )


def rerank_plan(limits: Limits, loaded: LoadedModel, params: dict[str, Any]) -> RerankPlan:
    pooler = require_task(loaded, "rerank", "rerank")
    documents = params["documents"]
    if not documents:
        raise faults.InvalidInput.at("/documents", "at least one document is needed")
    if len(documents) > limits.max_embed_inputs:
        raise faults.InvalidInput.at("/documents", f"at most {limits.max_embed_inputs} documents per request")
    query, truncate = params["query"], params.get("truncate", "end")
    if not query:
        raise faults.InvalidInput.at("/query", "the query is empty")
    instruction = params.get("instruction") or DEFAULT_INSTRUCTION
    inputs, truncated = [], []
    for index, document in enumerate(documents):
        if not document:
            raise faults.InvalidInput.at(f"/documents/{index}", "the document is empty")
        if pooler.family == "cross-encoder":
            ids, cut = _pair_ids(loaded, pooler, query, document, truncate)
        else:
            ids, cut = _reranker_ids(loaded, pooler, rerank_body(query, document, instruction), truncate)
        if cut is None:
            raise _too_long(f"/documents/{index}", loaded, pooler, len(ids))
        inputs.append(ids)
        if cut:
            truncated.append(index)
    top_n = min(params.get("top_n") or len(documents), len(documents))
    return RerankPlan(inputs, truncated, list(documents), top_n, params.get("return_documents", False))


# --- finishing -----------------------------------------------------------------------------------
def finish_vectors(rows: Sequence[bytes], plan: EmbedPlan) -> list[Any]:
    """Pooled float32 vectors as the wire has them: cut to `dimensions`, then normalised (the
    Matryoshka order); NumPy rows (the stdio writer's orjson writes them as float lists; the HTTP
    front door turns them into lists, openai_shapes.plain_vector) or base64 of little-endian
    float32, as OpenAI's encoding_format says."""
    import numpy as np

    matrix = np.stack([np.frombuffer(row, dtype=np.float32) for row in rows])
    if plan.dimensions is not None:
        matrix = matrix[:, : plan.dimensions]
    if plan.normalize:
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    matrix = np.ascontiguousarray(matrix, dtype="<f4")
    if plan.encoding == "base64":
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in matrix]
    return list(matrix)


def ranked(plan: RerankPlan, scores: Sequence[float]) -> list[dict[str, Any]]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: plan.top_n]
    results = []
    for index in order:
        entry: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if plan.return_documents:
            entry["document"] = {"text": plan.documents[index]}
        results.append(entry)
    return results


# --- inputs --------------------------------------------------------------------------------------
def _inputs(value: Any, limits: Limits) -> list[str | list[int]]:
    """A string, a list of strings, a list of token ids (one input) or a list of such lists."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif value and all(isinstance(v, int) for v in value):
        items = [value]
    else:
        items = list(value)
    if not items:
        raise faults.InvalidInput.at("/input", "at least one input is needed")
    if len(items) > limits.max_embed_inputs:
        raise faults.InvalidInput.at(
            "/input", f"at most {limits.max_embed_inputs} inputs per request, got {len(items)}"
        )
    for index, item in enumerate(items):
        if not item:
            raise faults.InvalidInput.at(_path(value, index), "the input is empty")
    return items


def _path(value: Any, index: int) -> str:
    return "/input" if isinstance(value, str) or (value and isinstance(value[0], int)) else f"/input/{index}"


def _pooling(pooler: Pooler, asked: str | None) -> str:
    if asked is None or asked == pooler.pooling:
        return pooler.pooling
    if asked not in pooler.poolings:
        raise faults.InvalidInput.at(
            "/pooling", f"{pooler.family} embedders pool by {', '.join(pooler.poolings)}; asked {asked}"
        )
    return asked


def _prompt(pooler: Pooler, params: dict[str, Any]) -> str:
    """The text put before each input: the model's prompt for `input_type`, or an instruction."""
    instruction, input_type = params.get("instruction"), params.get("input_type")
    if instruction is not None:
        if pooler.family != "decoder":
            raise faults.InvalidInput.at(
                "/instruction", "instructions are for decoder embedders (Qwen3-Embedding style); use input_type"
            )
        if input_type == "document":
            raise faults.InvalidInput.at("/instruction", "documents take no instruction; only queries do")
        return f"Instruct: {instruction}\nQuery:"
    if input_type is None:
        return ""
    if input_type in pooler.prompts:
        return pooler.prompts[input_type]
    if input_type in PROMPT_NAMES:
        return ""  # a model without prompts embeds queries and documents alike
    known = ", ".join(sorted({*pooler.prompts, *PROMPT_NAMES}))
    raise faults.InvalidInput.at("/input_type", f"the model's prompts are {known}; got {input_type}")


@dataclass(frozen=True)
class _Frame:
    """The special tokens around a text input: what the tokenizer adds, plus a decoder's end token."""

    prefix: list[int]
    suffix: list[int]


def _frame(loaded: LoadedModel, pooler: Pooler, pooling: str) -> _Frame:
    tokenizer = loaded.tokenizer
    with_special = list(tokenizer.encode("a", add_special_tokens=True))
    bare = list(tokenizer.encode("a", add_special_tokens=False))
    start = next((i for i in range(len(with_special)) if with_special[i : i + len(bare)] == bare), 0)
    prefix, suffix = with_special[:start], with_special[start + len(bare) :]
    if pooler.family == "decoder" and pooling == "last" and not suffix:
        suffix = [_end_token(tokenizer)]
    return _Frame(prefix, suffix)


def _end_token(tokenizer: Any) -> int:
    """Qwen3-Embedding reads the state at <|endoftext|>; other decoders at their EOS."""
    token = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    if isinstance(token, int) and token != getattr(tokenizer, "unk_token_id", None):
        return token
    eos = getattr(tokenizer, "eos_token_id", None)
    return eos if isinstance(eos, int) else 0


def _encode_texts(tokenizer: Any, texts: list[str]) -> Iterator[list[int]]:
    """All texts in one call of the fast tokenizer (its Rust batch encoder), no special tokens."""
    if not texts:
        return iter(())
    hf = tokenizer if callable(tokenizer) else tokenizer._tokenizer  # mlx-lm's wrapper holds Hugging Face's
    return iter(list(ids) for ids in hf(texts, add_special_tokens=False)["input_ids"])


def _embed_ids(
    loaded: LoadedModel, pooler: Pooler, frame: _Frame, body: list[int], given: bool, truncate: str, index: int
) -> tuple[list[int], bool]:
    """An input framed and cut to fit; `given` token ids are taken as they are."""
    path = f"/input/{index}"
    if given:
        check_token_ids(loaded, body, path)
        prefix, suffix = [], []
    else:
        prefix, suffix = frame.prefix, frame.suffix
    room = pooler.max_length - len(prefix) - len(suffix)
    if len(body) <= room:
        return prefix + body + suffix, False
    if truncate == "none" or room <= 0:
        raise _too_long(path, loaded, pooler, len(body) + len(prefix) + len(suffix))
    return prefix + (body[:room] if truncate == "end" else body[-room:]) + suffix, True


def _reranker_ids(loaded: LoadedModel, pooler: Pooler, body: str, truncate: str) -> tuple[list[int], bool | None]:
    """Qwen3-Reranker: prefix + body (cut at the end, as its reference code does) + suffix."""
    tokenizer = loaded.tokenizer
    prefix = list(tokenizer.encode(RERANK_PREFIX, add_special_tokens=False))
    suffix = list(tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False))
    ids = list(tokenizer.encode(body, add_special_tokens=False))
    room = pooler.max_length - len(prefix) - len(suffix)
    if len(ids) <= room:
        return prefix + ids + suffix, False
    if truncate == "none" or room <= 0:
        return prefix + ids + suffix, None
    return prefix + ids[:room] + suffix, True


def _pair_ids(
    loaded: LoadedModel, pooler: Pooler, query: str, document: str, truncate: str
) -> tuple[list[int], bool | None]:
    """A cross-encoder's pair encoding; the document is cut first."""
    tokenizer = loaded.tokenizer
    whole = list(tokenizer(query, document)["input_ids"])
    if len(whole) <= pooler.max_length:
        return whole, False
    if truncate == "none":
        return whole, None
    try:
        cut = tokenizer(query, document, truncation="only_second", max_length=pooler.max_length)["input_ids"]
    except Exception:  # the query alone is too long for the pair: cut both
        cut = tokenizer(query, document, truncation="longest_first", max_length=pooler.max_length)["input_ids"]
    return list(cut), True


def _too_long(path: str, loaded: LoadedModel, pooler: Pooler, tokens: int) -> faults.InvalidInput:
    return faults.InvalidInput.at(
        path,
        f"{tokens} tokens; {loaded.model_id} takes at most {pooler.max_length} (truncate: end cuts it to fit)",
    )
