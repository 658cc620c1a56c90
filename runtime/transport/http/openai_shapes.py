"""OpenAI's API shapes ↔ the runtime's wire shapes: dicts in, dicts out, no I/O.

Requests: a `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` or `/v1/rerank` body becomes
the params of `generate`, `embed` or `rerank`. Names are mapped and nothing is validated deeply: the
runtime checks the params against its JSON Schemas and answers errors that name the field, which
`errors.from_rpc_error` turns back into body names (`PARAM_NAMES`). What is refused here is what the
schemas cannot see: fields OpenAI defines that the runtime does not implement (refused rather than
ignored, so a client never gets something other than what it asked for) and unknown fields (refused
as OpenAI refuses them). Runtime options a client sends along (the SDKs' `extra_body`, as with vLLM:
`top_k`, `chat_template_kwargs`, `guidance`, ...) pass through under their own names.

Responses: a whole `generate` result becomes a `chat.completion` / `text_completion`; a stream's
`stream.chunk`, `stream.stats` and `stream.event` become `chat.completion.chunk` / `text_completion`
chunks (`ChatStream`, `CompletionStream`). The runtime already splits chat output the way OpenAI
streams it (answer text, `reasoning`, tool-call deltas in OpenAI's own shape), so the stream shapers
only regroup and rename.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from runtime.transport.http.errors import check_fields, from_stream_error, invalid, unsupported

Json = dict[str, Any]

# Wire names the client spelled otherwise (for errors.from_rpc_error's `names`).
PARAM_NAMES: Mapping[str, str] = {"stop_sequences": "stop", "prompt_tokens": "prompt"}

# Runtime options accepted in an OpenAI body under the runtime's own names (docs/protocol.md).
GENERATE_EXTENSIONS = frozenset(
    {
        "top_k",
        "min_p",
        "repetition_penalty",
        "stop_token_ids",
        "chat_template_kwargs",
        "reasoning_budget",
        "guidance",
        "fit_max_tokens",
        "priority",
        "timeout_ms",
        "keep_alive",
        "session_id",
        "prompt_cache",
        "draft_model",
        "num_draft_tokens",
    }
)
POOLING_EXTENSIONS = frozenset({"priority", "timeout_ms", "keep_alive"})
EMBED_EXTENSIONS = POOLING_EXTENSIONS | {"normalize", "truncate", "pooling", "input_type", "instruction"}
RERANK_EXTENSIONS = POOLING_EXTENSIONS | {"instruction", "truncate"}
# The runtime's embedding-cache figures, passed through in `/v1/embeddings` usage (docs/http.md).
EMBED_USAGE_EXTRAS = ("cached_inputs", "cached_tokens")

# Fields OpenAI defines that change nothing here: accepted and dropped.
_IGNORED = frozenset(
    {
        "user",
        "store",
        "metadata",
        "service_tier",
        "stream_options",  # read by the server for include_usage (`include_usage`)
        "safety_identifier",
        "prompt_cache_key",  # the runtime's prompt cache matches prefixes by itself
        "prompt_cache_retention",
        "prompt_cache_options",
        "verbosity",  # a style hint for OpenAI's own models
    }
)
# Fields OpenAI defines that the runtime does not implement: refused, with why.
_CHAT_REFUSED: Mapping[str, str] = {
    "audio": "is not supported: this server produces text only",
    "prediction": "(predicted outputs) is not supported by this server",
    "web_search_options": "is not supported: this server has no web search",
    "moderation": "is not supported: this server runs no moderation",
    "functions": "(deprecated) is not supported: use tools",
    "function_call": "(deprecated) is not supported: use tool_choice",
}
_SAMPLING = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
)
_CHAT_MAPPED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "logprobs",
        "top_logprobs",
        "stream",
        "n",
        "modalities",
        "reasoning_effort",
        "enable_thinking",
        *_SAMPLING,
    }
)
_CHAT_KNOWN = _CHAT_MAPPED | _IGNORED | GENERATE_EXTENSIONS
_COMPLETION_MAPPED = frozenset({"model", "prompt", "max_tokens", "stop", "logprobs", "stream", "n", *_SAMPLING})
_COMPLETION_REFUSED: Mapping[str, str] = {}
_COMPLETION_KNOWN = _COMPLETION_MAPPED | {"echo", "best_of", "suffix"} | _IGNORED | GENERATE_EXTENSIONS
_EMBED_KNOWN = frozenset({"model", "input", "dimensions", "encoding_format", "user"}) | EMBED_EXTENSIONS
_RERANK_KNOWN = frozenset({"model", "query", "documents", "top_n", "return_documents"}) | RERANK_EXTENSIONS
_RERANK_REFUSED: Mapping[str, str] = {
    "max_tokens_per_doc": "is not supported: documents are cut only at the model's length (truncate)",
    "rank_fields": "is not supported: documents are strings or {text} objects",
}

# The runtime's finish reasons in OpenAI's words. `cancelled` is "stop": the output ended because
# the client stopped it, and it is whole as far as it goes ("length" would tell a client to ask
# for more). `timeout` is "length": the request's own `timeout_ms` cut the answer short, like
# max_tokens does, and OpenAI's one word for "cut short by a limit you set" is "length".
CHAT_FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "cancelled": "stop",
    "timeout": "length",
}


def chat_finish_reason(reason: object) -> str:
    return CHAT_FINISH_REASONS.get(str(reason), "stop")


def completion_finish_reason(reason: object) -> str:
    """The legacy completions API knows only stop, length (and content_filter)."""
    mapped = chat_finish_reason(reason)
    return mapped if mapped in ("stop", "length") else "stop"


# --- requests ------------------------------------------------------------------------------------
def chat_params(body: Mapping[str, Any]) -> Json:
    """A `/v1/chat/completions` body as `generate` params (`streaming` always set: OpenAI's default
    is a whole answer, the runtime's a stream)."""
    check_fields(body, _CHAT_KNOWN, _CHAT_REFUSED)
    _check_n(body)
    _check_modalities(body)
    params = _generate_base(body)
    params["format"] = "openai"  # never taken for Anthropic's shape: such a block is a precise 400
    if "messages" in body:
        params["messages"] = clean_messages(body["messages"])
    _copy(body, params, ("tools", "tool_choice", "parallel_tool_calls", "response_format"))
    max_tokens = _first_set(body, ("max_completion_tokens", "max_tokens"))
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if body.get("logprobs"):
        params["logprobs"] = True
        _copy(body, params, ("top_logprobs",))
    _thinking(body, params)
    return params


def completion_params(body: Mapping[str, Any]) -> Json:
    """A `/v1/completions` body as `generate` params: one prompt (a string or token ids), used as given."""
    check_fields(body, _COMPLETION_KNOWN, _COMPLETION_REFUSED)
    _check_n(body)
    if body.get("echo"):
        raise unsupported("echo", "is not supported: the answer holds the completion only")
    if body.get("best_of") not in (None, 1):
        raise unsupported("best_of", "other than 1 is not supported: one completion is generated")
    if body.get("suffix"):
        raise unsupported("suffix", "(insertion) is not supported by this server")
    params = _generate_base(body)
    params.update(_prompt(body.get("prompt")))
    _copy(body, params, ("max_tokens", "chat_template_kwargs"))
    logprobs = body.get("logprobs")
    if logprobs is not None and logprobs is not False:  # legacy: an int, top alternatives (0: none)
        params["logprobs"] = True
        if not isinstance(logprobs, bool) and isinstance(logprobs, int) and logprobs > 0:
            params["top_logprobs"] = logprobs
    return params


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streamed answer ends with a usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def embeddings_params(body: Mapping[str, Any]) -> Json:
    """A `/v1/embeddings` body as `embed` params."""
    check_fields(body, _EMBED_KNOWN, {})
    params = _model(body)
    _copy(body, params, ("input", "dimensions", "encoding_format", *sorted(EMBED_EXTENSIONS)))
    return params


def rerank_params(body: Mapping[str, Any]) -> Json:
    """A Cohere/Jina-style `/v1/rerank` body as `rerank` params; documents may be strings or `{text}`."""
    check_fields(body, _RERANK_KNOWN, _RERANK_REFUSED)
    params = _model(body)
    _copy(body, params, ("query", "top_n", "return_documents", *sorted(RERANK_EXTENSIONS)))
    if "documents" in body:
        params["documents"] = _documents(body["documents"])
    return params


def clean_messages(messages: object) -> object:
    """OpenAI messages as given, minus what clients echo back from earlier responses that means
    nothing (null fields, `annotations`): the runtime's schema is closed, and `null` means "absent"
    in OpenAI's API. A `content: null` stays (an assistant turn that only calls tools)."""
    if not isinstance(messages, list):
        return messages  # the runtime's schema names the problem
    return [_clean_message(m) if isinstance(m, dict) else m for m in messages]


def _clean_message(message: Mapping[str, Any]) -> Json:
    cleaned = {k: v for k, v in message.items() if (v is not None or k == "content") and k != "annotations"}
    content = cleaned.get("content")
    if isinstance(content, list):
        cleaned["content"] = [_drop_nulls(p) if isinstance(p, dict) else p for p in content]
    return cleaned


def _drop_nulls(part: Mapping[str, Any]) -> Json:
    return {k: v for k, v in part.items() if v is not None}


def _model(body: Mapping[str, Any]) -> Json:
    """`model` → `model_id`; absent when the body has none (the server puts its default model)."""
    return {"model_id": body["model"]} if body.get("model") is not None else {}


def _generate_base(body: Mapping[str, Any]) -> Json:
    """What chat and completions share: model, sampling, stop, runtime options, streaming."""
    params = _model(body)
    _copy(body, params, (*_SAMPLING, *sorted(GENERATE_EXTENSIONS - {"chat_template_kwargs"})))
    stop = body.get("stop")
    if stop is not None:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    params["streaming"] = bool(body.get("stream"))
    return params


def _copy(body: Mapping[str, Any], params: Json, fields: Iterable[str]) -> None:
    """Copy the fields that are set; `null` is OpenAI's "use the default"."""
    for field in fields:
        if body.get(field) is not None:
            params[field] = body[field]


def _first_set(body: Mapping[str, Any], fields: Iterable[str]) -> Any:
    return next((body[f] for f in fields if body.get(f) is not None), None)


def _check_n(body: Mapping[str, Any]) -> None:
    if body.get("n") not in (None, 1):
        raise unsupported("n", "other than 1 is not supported: one choice is generated per request")


def _check_modalities(body: Mapping[str, Any]) -> None:
    modalities = body.get("modalities")
    if modalities is not None and (not isinstance(modalities, list) or set(modalities) - {"text"}):
        raise unsupported("modalities", 'other than ["text"] are not supported: this server produces text only')


def _thinking(body: Mapping[str, Any], params: Json) -> None:
    """Thinking on or off, as the chat template takes it (docs/chat.md): `chat_template_kwargs`
    as given wins; else a top-level `enable_thinking` (Qwen's and SGLang's spelling); else
    `reasoning_effort`, where "none" turns thinking off and any other effort on (the template's
    switch is on or off; a budget is `reasoning_budget`'s)."""
    kwargs = body.get("chat_template_kwargs")
    switch = body.get("enable_thinking")
    effort = body.get("reasoning_effort")
    if switch is None and effort is not None:
        switch = effort != "none"
    if not isinstance(kwargs, dict):
        if kwargs is not None:
            params["chat_template_kwargs"] = kwargs  # not an object: the runtime's schema says so
            return
        kwargs = {}
    if switch is not None and "enable_thinking" not in kwargs:
        kwargs = {**kwargs, "enable_thinking": bool(switch)}
    if kwargs:
        params["chat_template_kwargs"] = kwargs


def _prompt(prompt: object) -> Json:
    """The legacy prompt: a string, a list of one string, token ids, or a list of one token-id list."""
    if isinstance(prompt, str):
        return {"prompt": prompt}
    if isinstance(prompt, list) and prompt and all(_is_token(t) for t in prompt):
        return {"prompt_tokens": prompt}
    if isinstance(prompt, list) and len(prompt) == 1:
        return _prompt(prompt[0]) if isinstance(prompt[0], (str, list)) else {"prompt": prompt[0]}
    if isinstance(prompt, list) and len(prompt) > 1:
        raise unsupported("prompt", "with several prompts is not supported: send one prompt per request")
    if prompt is None:
        raise invalid("prompt is required", "prompt")
    raise invalid("prompt must be a string or a list of token ids", "prompt")


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _documents(documents: object) -> object:
    """Documents as strings: `{"text": ...}` objects (Cohere, Jina) are read for their text."""
    if not isinstance(documents, list):
        return documents
    texts: list[object] = []
    for i, document in enumerate(documents):
        if isinstance(document, dict):
            if not isinstance(document.get("text"), str):
                raise invalid(f"documents[{i}] must be a string or an object with a text string", f"documents[{i}]")
            document = document["text"]
        texts.append(document)
    return texts


# --- usage and logprobs ----------------------------------------------------------------------------
def openai_usage(usage: Mapping[str, Any] | None) -> Json | None:
    """The runtime's usage (already in OpenAI's terms) without the runtime's flat extras."""
    if not usage:
        return None
    return {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
        "completion_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens", 0)},
    }


def _stats_usage(stats: Mapping[str, Any] | None) -> Json | None:
    return openai_usage(stats.get("usage")) if stats else None


def _answer_entries(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The token entries whose logprobs a client gets: those carrying answer text. Thinking and
    tool-call tokens have none (OpenAI's logprobs cover `content` only), so the logprob tokens
    concatenate to the content."""
    return [e for e in entries if e.get("token") and e.get("logprob") is not None]


def chat_logprobs(entries: Iterable[Mapping[str, Any]]) -> Json:
    """OpenAI's chat `logprobs`: `{content: [{token, logprob, bytes, top_logprobs}], refusal}`."""
    content = [
        {
            "token": e["token"],
            "logprob": e["logprob"],
            "bytes": list(e["token"].encode()),
            "top_logprobs": [
                {"token": t["token"], "logprob": t["logprob"], "bytes": list(t["token"].encode())}
                for t in e.get("top_logprobs") or ()
            ],
        }
        for e in _answer_entries(entries)
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(entries: Iterable[Mapping[str, Any]], offset: int = 0) -> Json:
    """The legacy completions `logprobs`: parallel lists, `text_offset` counted from `offset`."""
    tokens, logprobs, tops, offsets = [], [], [], []
    for e in _answer_entries(entries):
        tokens.append(e["token"])
        logprobs.append(e["logprob"])
        tops.append({t["token"]: t["logprob"] for t in e.get("top_logprobs") or ()})
        offsets.append(offset)
        offset += len(e["token"])
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


# --- chat: streamed --------------------------------------------------------------------------------
class ChatStream:
    """One chat stream's `chat.completion.chunk`s: `first()` (the role), `chunk()` per
    `stream.chunk`, `end()` for the stream's last messages."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool, want_logprobs: bool) -> None:
        self.completion_id, self.model, self.created = completion_id, model, created
        self.include_usage, self.want_logprobs = include_usage, want_logprobs

    def first(self) -> list[Json]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def chunk(self, params: Mapping[str, Any]) -> list[Json]:
        """One chunk per run of one kind (thinking, answer, tool calls), in the order the tokens came,
        so a client that renders reasoning before content sees them in the model's order; runs with
        nothing to say (marker tokens, held-back text) send nothing."""
        chunks = []
        for kind, run in _runs(params.get("tokens") or ()):
            delta, logprobs = self._delta(kind, run)
            chunks.append(self._chunk(delta, logprobs=logprobs))
        return chunks

    def end(self, stats: Mapping[str, Any] | None, event: Mapping[str, Any]) -> list[Json]:
        """The finishing chunk, then (include_usage) the usage chunk with no choices. An errored
        stream raises HttpError: the server sends it as the stream's error event."""
        if event.get("event") == "error":
            raise from_stream_error(event)
        chunks = [self._chunk({}, finish_reason=chat_finish_reason(event.get("finish_reason")))]
        usage = _stats_usage(stats)
        if self.include_usage and usage is not None:
            chunks.append({**self._envelope(), "choices": [], "usage": usage})
        return chunks

    def _delta(self, kind: str, run: list[Any]) -> tuple[Json, Json | None]:
        if kind == "reasoning":
            return {"reasoning_content": "".join(run)}, None
        if kind == "tool_calls":
            return {"tool_calls": merge_tool_deltas(run)}, None
        text = "".join(e["token"] for e in run)
        return {"content": text}, chat_logprobs(run) if self.want_logprobs else None

    def _envelope(self) -> Json:
        envelope: Json = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.include_usage:
            envelope["usage"] = None  # as OpenAI sends it: null on every chunk but the last
        return envelope

    def _chunk(self, delta: Json, finish_reason: str | None = None, logprobs: Json | None = None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return {**self._envelope(), "choices": [choice]}


def _runs(entries: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, list[Any]]]:
    """The entries' pieces grouped into runs of one kind: ("reasoning", [text, ...]), ("content",
    [entry, ...]) or ("tool_calls", [delta, ...]). Within one token the thinking comes first (a
    token that closes thinking and starts the answer), then the answer text, then call pieces."""
    kind = ""
    run: list[Any] = []
    for piece_kind, piece in _pieces(entries):
        if piece_kind != kind and run:
            yield kind, run
            run = []
        kind = piece_kind
        run.append(piece)
    if run:
        yield kind, run


def _pieces(entries: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, Any]]:
    for entry in entries:
        if entry.get("reasoning"):
            yield "reasoning", entry["reasoning"]
        if entry.get("token"):
            yield "content", entry
        for delta in entry.get("tool_calls") or ():
            yield "tool_calls", delta


def merge_tool_deltas(deltas: Iterable[Mapping[str, Any]]) -> list[Json]:
    """Consecutive pieces of one call as one delta (its arguments joined), as OpenAI streams them;
    the runtime's first piece of a call is already OpenAI's (index, id, type, function.name)."""
    merged: list[Json] = []
    for delta in deltas:
        last = merged[-1] if merged else None
        if last is not None and last["index"] == delta.get("index") and "id" not in delta:
            arguments = (delta.get("function") or {}).get("arguments")
            if arguments is not None:
                function = last["function"]
                function["arguments"] = function.get("arguments", "") + arguments
            continue
        merged.append({**delta, "function": dict(delta.get("function") or {})})
    return merged


# --- chat: whole -----------------------------------------------------------------------------------
def chat_completion(result: Mapping[str, Any], model: str, completion_id: str, created: int) -> Json:
    """A whole `generate` result (`streaming: false`) as a `chat.completion`."""
    message: Json = {"role": "assistant", "content": result.get("content", "")}
    if result.get("reasoning"):
        message["reasoning_content"] = result["reasoning"]
    if result.get("tool_calls"):
        message["tool_calls"] = [_whole_call(call) for call in result["tool_calls"]]
    tokens = result.get("tokens")
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": chat_finish_reason(result.get("finish_reason")),
        "logprobs": chat_logprobs(tokens) if tokens is not None else None,
    }
    completion: Json = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    usage = openai_usage(result.get("usage"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def _whole_call(call: Mapping[str, Any]) -> Json:
    """A parsed call as OpenAI's message tool call: arguments as JSON text (the runtime's own)."""
    function = call.get("function") or {}
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function.get("name", call.get("name")), "arguments": function.get("arguments", "{}")},
    }


# --- legacy completions ----------------------------------------------------------------------------
class CompletionStream:
    """One `/v1/completions` stream's `text_completion` chunks. `want_logprobs` is the body's
    `logprobs` (an int in this API; 0 still asks for the chosen tokens' logprobs)."""

    def __init__(
        self, completion_id: str, model: str, created: int, include_usage: bool, want_logprobs: int | bool | None
    ) -> None:
        self.completion_id, self.model, self.created = completion_id, model, created
        self.include_usage = include_usage
        self.want_logprobs = want_logprobs is not None and want_logprobs is not False
        self._offset = 0  # text_offset continues across chunks

    def first(self) -> list[Json]:
        return []  # the legacy API has no role chunk

    def chunk(self, params: Mapping[str, Any]) -> list[Json]:
        entries = params.get("tokens") or ()
        text = "".join(e.get("token", "") for e in entries)
        if not text:
            return []
        logprobs = completion_logprobs(entries, self._offset) if self.want_logprobs else None
        self._offset += len(text)
        return [self._chunk(text, None, logprobs)]

    def end(self, stats: Mapping[str, Any] | None, event: Mapping[str, Any]) -> list[Json]:
        if event.get("event") == "error":
            raise from_stream_error(event)
        chunks = [self._chunk("", completion_finish_reason(event.get("finish_reason")), None)]
        usage = _stats_usage(stats)
        if self.include_usage and usage is not None:
            chunks.append({**self._envelope(), "choices": [], "usage": usage})
        return chunks

    def _envelope(self) -> Json:
        return {"id": self.completion_id, "object": "text_completion", "created": self.created, "model": self.model}

    def _chunk(self, text: str, finish_reason: str | None, logprobs: Json | None) -> Json:
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}
        return {**self._envelope(), "choices": [choice]}


def completion(result: Mapping[str, Any], model: str, completion_id: str, created: int) -> Json:
    """A whole `generate` result of a prompt as a `text_completion`."""
    tokens = result.get("tokens")
    choice = {
        "text": result.get("content", ""),
        "index": 0,
        "logprobs": completion_logprobs(tokens) if tokens is not None else None,
        "finish_reason": completion_finish_reason(result.get("finish_reason")),
    }
    out: Json = {"id": completion_id, "object": "text_completion", "created": created, "model": model}
    out["choices"] = [choice]
    usage = openai_usage(result.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


# --- models, embeddings, rerank -----------------------------------------------------------------------
def models_list(result: Mapping[str, Any], created: int = 0) -> Json:
    """`models/list` as OpenAI's model list: every model a request may name (registered or loaded).
    The runtime keeps no creation time; `created` is what the server passes (0: unknown)."""
    data = [
        {"id": m["model_id"], "object": "model", "created": created, "owned_by": "mlx-rpc-runtime"}
        for m in result.get("models") or ()
    ]
    return {"object": "list", "data": data}


def embeddings_response(result: Mapping[str, Any], model: str) -> Json:
    """An `embed` result as OpenAI's embedding list (vectors as floats, or base64 strings when the
    body asked for `encoding_format: base64`, as OpenAI sends them). Usage keeps the runtime's
    cache figures as extra fields: OpenAI defines none, and a client can see its hits only here."""
    data = [
        {"object": "embedding", "index": d["index"], "embedding": plain_vector(d["embedding"])}
        for d in result.get("data") or ()
    ]
    usage = result.get("usage") or {}
    out_usage = {"prompt_tokens": usage.get("prompt_tokens", 0), "total_tokens": usage.get("total_tokens", 0)}
    out_usage.update({k: usage[k] for k in EMBED_USAGE_EXTRAS if k in usage})
    return {"object": "list", "data": data, "model": model, "usage": out_usage}


def plain_vector(embedding: Any) -> Any:
    """A vector as JSON's stdlib encoder takes it. The runtime hands NumPy rows over (the stdio
    writer's orjson writes them directly), which Starlette's `json.dumps` cannot; a base64 string
    or a list passes as it is. No NumPy import: this module stays pure."""
    return embedding.tolist() if hasattr(embedding, "tolist") else embedding


def rerank_response(result: Mapping[str, Any], model: str, response_id: str | None = None) -> Json:
    """A `rerank` result in the shape Cohere and Jina answer (the runtime's results already are)."""
    results = []
    for r in result.get("results") or ():
        item: Json = {"index": r["index"], "relevance_score": r["relevance_score"]}
        if "document" in r:
            item["document"] = {"text": r["document"]["text"]}
        results.append(item)
    usage = result.get("usage") or {}
    return {
        "id": response_id or f"rerank-{uuid.uuid4().hex}",
        "results": results,
        "model": model,
        "usage": {"prompt_tokens": usage.get("prompt_tokens", 0), "total_tokens": usage.get("total_tokens", 0)},
    }
