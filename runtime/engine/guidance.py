"""Structured output enforced token by token with llguidance.

A `Guide` is a grammar compiled for one model's tokenizer (cached per model by `GuideCache`, so a
second request with the same schema starts at once). Each stream gets its own `Constraint`: a
copy of the guide's matcher that works as an mlx-lm logits processor. At every step it follows
the stream's history (consuming new tokens, rolling back changed ones) and masks every token the
grammar does not allow next.

llguidance's own MLX mask kernel is a Metal kernel ("No Metal back-end" on the CPU and CUDA
backends), so the bitmask is applied with portable MLX ops: one `mx.where` per step, which costs
well under a millisecond at these vocabulary sizes on every backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import mlx.core as mx

from runtime import faults

if TYPE_CHECKING:
    import numpy as np
    from llguidance._lib import JsonCompileOptions  # declared only in its .pyi, for type checking

# llguidance (and, through llguidance.hf, transformers) is imported where it is first needed: the
# runtime starts in a tenth of a second, and a host that never asks for structured output never
# pays for it.

JSON_OPTIONS: JsonCompileOptions = {"item_separator": ", ", "key_separator": ": "}
# Applied over anything a schema's "x-guidance" says: free whitespace could loop until max_tokens.
JSON_OVERRIDES: JsonCompileOptions = {"whitespace_flexible": False, "whitespace_pattern": None}


def json_schema_grammar(schema: dict[str, Any] | bool) -> str:
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(
        schema,  # type: ignore[arg-type]  # a boolean schema compiles too; its .pyi says str or dict
        defaults=JSON_OPTIONS,
        overrides=JSON_OVERRIDES,
    )


def lark_grammar(lark: str) -> str:
    import llguidance

    return llguidance.LLMatcher.grammar_from_lark(lark)


def regex_grammar(pattern: str) -> str:
    import llguidance

    return llguidance.LLMatcher.grammar_from_regex(pattern)


@dataclass(frozen=True)
class Guide:
    """A compiled grammar: a pristine matcher that each stream copies."""

    mode: str
    matcher: Any
    vocab: int  # the size llguidance's masks have (the model's vocabulary)

    def new_constraint(self) -> Constraint:
        return Constraint(self.mode, self.matcher.deep_copy(), self.vocab)


class GuideCache:
    """Compiled guides of one model, least recently used first out. Any thread may call it."""

    def __init__(self, tokenizer: Any, vocab_size: int, capacity: int) -> None:
        self._hf_tokenizer, self._vocab_size, self.capacity = tokenizer, vocab_size, capacity
        self._eos_ids = frozenset(getattr(tokenizer, "eos_token_ids", None) or ())  # encoders: none
        self._lltokenizer: Any = None
        self._outlines_vocab: Any = None
        self._guides: OrderedDict[tuple[str, str], Guide] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._guides

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._guides), "capacity": self.capacity, "hits": self.hits, "misses": self.misses}

    def get(self, mode: str, grammar: str, model_id: str, engine: str = "llguidance") -> Guide:
        """The compiled guide for this grammar; compiles it (milliseconds to a second) on a miss.
        For the outlines engine, `grammar` is the regex outlines-core compiles."""
        key = (mode if engine == "llguidance" else f"{mode}@{engine}", grammar)
        with self._lock:
            guide = self._guides.get(key)
            if guide is not None:
                self._guides.move_to_end(key)
                self.hits += 1
                return guide
            self.misses += 1
        matcher = self._compile(grammar, model_id) if engine == "llguidance" else self._outlines(grammar, model_id)
        guide = Guide(mode, matcher, self._vocab_size)
        with self._lock:
            self._guides[key] = guide
            while len(self._guides) > self.capacity:
                self._guides.popitem(last=False)
        return guide

    def _compile(self, grammar: str, model_id: str) -> Any:
        import llguidance

        matcher = llguidance.LLMatcher(self._tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise compile_error(matcher.get_error(), model_id)
        return matcher

    def _outlines(self, regex: str, model_id: str) -> OutlinesMatcher:
        from outlines_core import Index

        try:
            index = Index(regex, self._outlines_vocabulary())
        except Exception as exc:  # outlines-core raises ValueError for what it cannot compile
            raise faults.GuidanceFailed(
                f"outlines does not compile it: {exc}", model_id=model_id, reason=str(exc), engine="outlines"
            ) from None
        return OutlinesMatcher(index, sorted(self._eos_ids))

    def _outlines_vocabulary(self) -> Any:
        """outlines-core's vocabulary: every token's bytes (as llguidance reads them from the
        tokenizer), special tokens left out; built once."""
        if self._outlines_vocab is None:
            from outlines_core import Vocabulary

            lltokenizer = self._tokenizer()
            by_bytes: dict[bytes, list[int]] = {}
            for token in range(min(self._vocab_size, lltokenizer.vocab_size)):
                if token in self._eos_ids or lltokenizer.is_special_token(token):
                    continue
                text = lltokenizer.decode_bytes([token])
                if text:
                    by_bytes.setdefault(text, []).append(token)
            vocabulary = Vocabulary(min(self._eos_ids), by_bytes)
            with self._lock:
                self._outlines_vocab = self._outlines_vocab or vocabulary
        return self._outlines_vocab

    def _tokenizer(self) -> Any:
        """Built once (up to a second for a large vocabulary), outside the lock: readers of the
        cache never wait for it."""
        if self._lltokenizer is None:
            import llguidance.hf

            built = llguidance.hf.from_tokenizer(
                self._hf_tokenizer._tokenizer, n_vocab=self._vocab_size, eos_token=sorted(self._eos_ids)
            )
            with self._lock:
                self._lltokenizer = self._lltokenizer or built
        return self._lltokenizer


def compile_error(message: str, model_id: str) -> faults.GuidanceFailed:
    """llguidance's message, with unsupported JSON Schema keywords listed by name."""
    details: dict[str, Any] = {"model_id": model_id, "reason": message.strip()}
    prefix = "Unimplemented keys: "
    if message.startswith(prefix):
        names = [n.strip().strip('"') for n in message[len(prefix) :].strip().strip("[]").split(",")]
        details["unsupported_keywords"] = [n for n in names if n]
        message = "unsupported JSON Schema keywords: " + ", ".join(details["unsupported_keywords"])
    return faults.GuidanceFailed(f"guidance does not compile: {message.strip()}", **details)


class OutlinesMatcher:
    """outlines-core's Guide behind the part of llguidance's matcher the constraint uses, so one
    `Constraint` serves both engines (the mask is the same portable MLX op)."""

    def __init__(self, index: Any, eos_ids: list[int]) -> None:
        from outlines_core import Guide as OutlinesGuide

        self.index, self.eos_ids = index, eos_ids
        self.guide = OutlinesGuide(index, max_rollback=SYNC_WINDOW + 16)

    def deep_copy(self) -> OutlinesMatcher:
        return OutlinesMatcher(self.index, self.eos_ids)  # the pristine matcher is never advanced

    def validate_tokens(self, tokens: list[int]) -> int:
        """How many of `tokens`, in order, the grammar accepts from here."""
        accepted = 0
        while accepted < len(tokens) and self.guide.accepts_tokens(tokens[: accepted + 1]):
            accepted += 1
        return accepted

    def consume_tokens(self, tokens: list[int]) -> bool:
        for token in tokens:
            self.guide.advance(token, return_tokens=False)
        return True

    def rollback(self, count: int) -> bool:
        self.guide.rollback_state(count)
        return True

    def is_accepting(self) -> bool:
        return bool(self.guide.is_finished())

    def is_error(self) -> bool:
        return False

    def get_error(self) -> str:
        return ""

    def allowed_bits(self, vocab: int) -> np.ndarray:
        import numpy as np

        bits = np.zeros(vocab, np.uint8)
        allowed = [t for t in self.guide.get_tokens() if t < vocab]
        bits[allowed] = 1
        if bits[min(self.eos_ids)]:  # outlines knows one end-of-stream token: the model's others too
            bits[[t for t in self.eos_ids if t < vocab]] = 1
        return bits


class GuidanceViolation(RuntimeError):
    """The matcher could not follow the stream: a bug, never the model's fault; ends the stream."""


# How far back a stream's history may change between two calls: the longest rewind of any engine
# path (a speculative round of up to 8 draft tokens, or a hand-over's one token).
SYNC_WINDOW = 32


class Constraint:
    """One stream's matcher, as an mlx-lm logits processor `(tokens, logits) -> logits`.

    `tokens` is the whole history (prompt, then generated tokens); the first call comes before any
    token is generated, so its length is the prompt's (however the engine path represents the
    prompt: mlx-vlm's, for one, differs from the request's token list). Rather than assume one new token
    per call, the matcher follows that history: it consumes what is new and rolls back what
    changed. So the same object serves the single-stream loop, the batch (where a stream that moves
    in re-feeds its last token), and speculative decoding (where draft tokens are proposed, then
    verified, then partly rejected).
    """

    def __init__(self, mode: str, matcher: Any, vocab: int) -> None:
        self.mode, self.matcher, self.vocab = mode, matcher, vocab
        self.prompt_len: int | None = None
        self.consumed: list[int] = []  # the generated tokens the matcher has consumed, in order
        self.follows = True  # False: the history holds a token the grammar refuses (a draft's)
        self._bitmask: np.ndarray | None = None

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        flat = tokens.reshape(-1)
        if self.prompt_len is None:
            self.prompt_len = flat.size
        generated = flat.size - self.prompt_len
        start = max(0, min(generated, len(self.consumed)) - SYNC_WINDOW)
        self._follow(start, cast("list[int]", flat[self.prompt_len + start :].tolist()) if generated > start else [])
        if not self.follows:
            return logits  # a rejected draft position: what is sampled here is never kept
        return mx.where(self._allowed(logits.shape[-1]), logits, -mx.inf)

    def _follow(self, start: int, tail: list[int]) -> None:
        """Make `consumed[start:]` equal `tail`, or as much of it as the grammar accepts."""
        common = start
        while (
            common < len(self.consumed) and common - start < len(tail) and self.consumed[common] == tail[common - start]
        ):
            common += 1
        if common < len(self.consumed):
            if not self.matcher.rollback(len(self.consumed) - common):
                raise GuidanceViolation(f"rollback failed: {self.matcher.get_error()}")
            del self.consumed[common:]
        new = tail[common - start :]
        accepted = self.matcher.validate_tokens(new) if new else 0
        if accepted and not self.matcher.consume_tokens(new[:accepted]):
            raise GuidanceViolation(f"the grammar refused tokens it had accepted: {self.matcher.get_error()}")
        self.consumed.extend(new[:accepted])
        self.follows = accepted == len(new)

    def _allowed(self, width: int) -> mx.array:
        """The mask for logits `width` wide: llguidance's is the model vocabulary's size; a draft
        with a larger embedding gets its extra ids masked, a smaller one the ids it has."""
        import llguidance.numpy
        import numpy as np

        if isinstance(self.matcher, OutlinesMatcher):
            bits = self.matcher.allowed_bits(self.vocab)
        else:
            if self._bitmask is None:
                self._bitmask = llguidance.numpy.allocate_token_bitmask(1, self.vocab)
            llguidance.numpy.fill_next_token_bitmask(self.matcher, self._bitmask)
            bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little")[: self.vocab]
        if width != bits.size:
            bits = np.concatenate([bits, np.zeros(width, np.uint8)])[:width]
        return mx.array(bits.astype(np.bool_))

    def is_complete(self, emitted: list[int]) -> bool:
        """Whether the emitted tokens (stop tokens excluded) form a whole output of the grammar."""
        start = max(0, min(len(emitted), len(self.consumed)) - SYNC_WINDOW)
        self._follow(start, emitted[start:])
        return self.follows and self.matcher.is_accepting() and not self.matcher.is_error()
