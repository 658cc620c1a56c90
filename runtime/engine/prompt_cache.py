"""Prompt cache: KV caches of finished streams, reused for the longest shared prefix of a new prompt.

Each loaded model keeps a bounded set of entries (token sequence + the KV cache holding exactly those
tokens). A new stream copies the entry sharing its longest prefix and trimmed to it, and prefills
only the rest: in a chat, turn N re-sends turns 1..N-1, so it prefills only its new tokens. Copies
share the entry's arrays (MLX arrays are values: a write through the copy never reaches the entry).
Entries are whole units: the least recently used go first when the byte or entry budget is
exceeded, and an entry that a longer one of the same conversation supersedes goes at once. Caches
that cannot be trimmed (rotating windows, recurrent layers) are never stored, so never corrupted.

A session (`session_id`) pins one entry per conversation: it is not evicted, and it can be saved to
disk and loaded back (also after a restart): safetensors written atomically, tagged with the model
id and a fingerprint of its weights and tokenizer. Engine thread only, except `stats`/`sessions`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np

FORMAT = "mlx-rpc-runtime/prompt-cache/1"


class SessionFileError(ValueError):
    """A session file that cannot be used here: another model, corrupt, truncated or missing."""


@dataclass(eq=False)
class Entry:
    tokens: np.ndarray
    cache: list[Any]
    nbytes: int
    last_used: int  # the cache's own use counter: the same order on every rank of a group, never a tie
    session: str | None = None


class PromptCache:
    def __init__(self, max_bytes: int, max_entries: int, bytes_per_token: int | None = None) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        # A distributed group's ranks hold different parts of one cache (pipeline stages of unequal
        # depth), so they size entries by one rule of the whole model, and evict the same ones.
        self.bytes_per_token = bytes_per_token
        self._entries: list[Entry] = []
        self._lock = threading.Lock()  # stats() and sessions() may be read from other threads
        self.hits = self.misses = self.tokens_reused = 0
        self._uses = itertools.count()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def lookup(self, tokens: list[int], session: str | None = None) -> tuple[list[Any] | None, int]:
        """A private copy of the best cache for `tokens`, trimmed to the shared prefix, and its length.

        At least the prompt's last token is always left to prefill (it gives the first logits).
        """
        if not self.enabled or len(tokens) < 2:
            return None, 0
        import numpy as np

        wanted = np.asarray(tokens, dtype=np.int64)
        best, best_len = None, 0
        with self._lock:
            for entry in self._entries:
                shared = _shared_prefix(entry.tokens, wanted)
                preferred = session is not None and entry.session == session
                if shared > best_len or (preferred and shared == best_len and shared):
                    best, best_len = entry, shared
            usable = min(best_len, len(tokens) - 1)
            if best is None or usable == 0:
                self.misses += 1
                return None, 0
            best.last_used = next(self._uses)
            self.hits += 1
            self.tokens_reused += usable
        return _trimmed_copy(best.cache, usable), usable

    def store(self, tokens: list[int], cache: list[Any], session: str | None = None) -> None:
        """Keep `cache` (which holds exactly `tokens`) for later prompts; the caller gives it up."""
        import numpy as np
        from mlx_lm.models.cache import can_trim_prompt_cache

        if not self.enabled or not tokens or not can_trim_prompt_cache(cache) or cache[0].offset != len(tokens):
            return
        size = len(tokens) * self.bytes_per_token if self.bytes_per_token else _nbytes(cache)
        entry = Entry(np.asarray(tokens, dtype=np.int64), cache, size, next(self._uses), session)
        with self._lock:
            # A session keeps one entry; an unpinned entry that this one extends is superseded.
            self._entries = [e for e in self._entries if not _superseded(e, entry)]
            self._entries.append(entry)
            self._evict()

    def drop_session(self, session: str) -> bool:
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.session != session]
            return len(self._entries) != before

    def session_entry(self, session: str) -> Entry | None:
        with self._lock:
            return next((e for e in self._entries if e.session == session), None)

    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"session_id": e.session, "tokens": int(e.tokens.size), "bytes": e.nbytes}
                for e in self._entries
                if e.session is not None
            ]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "entries": len(self._entries),
                "bytes": sum(e.nbytes for e in self._entries),
                "max_bytes": self.max_bytes,
                "max_entries": self.max_entries,
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
                "tokens_reused": self.tokens_reused,
                "sessions": sum(1 for e in self._entries if e.session is not None),
            }

    def _evict(self) -> None:
        """Least recently used first; pinned (session) entries only when nothing else is left."""
        while self._entries and (
            len(self._entries) > self.max_entries or sum(e.nbytes for e in self._entries) > self.max_bytes
        ):
            unpinned = [e for e in self._entries if e.session is None] or self._entries
            victim = min(unpinned, key=lambda e: e.last_used)
            self._entries = [e for e in self._entries if e is not victim]


def _shared_prefix(a: np.ndarray, b: np.ndarray) -> int:
    import numpy as np

    n = min(a.size, b.size)
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


def _superseded(old: Entry, new: Entry) -> bool:
    if old.session is not None or new.session is not None:
        return old.session == new.session and new.session is not None
    return old.tokens.size <= new.tokens.size and _shared_prefix(old.tokens, new.tokens) == old.tokens.size


def _trimmed_copy(cache: list[Any], keep: int) -> list[Any]:
    """Copies holding the first `keep` tokens, that never write into the entry's arrays.

    A KV layer gets fresh sliced arrays (no copy of the data until MLX needs one): its next update
    must grow them, so it concatenates into new arrays instead of assigning into the shared ones.
    Other cache types are deep-copied, then trimmed.
    """
    copies = []
    for layer in cache:
        if type(layer).__name__ == "KVCache" and layer.keys is not None:
            twin = copy.copy(layer)
            twin.keys, twin.values = layer.keys[..., :keep, :], layer.values[..., :keep, :]
            twin.offset = keep
        else:
            twin = copy.deepcopy(layer)
            twin.trim(twin.offset - keep)
        copies.append(twin)
    return copies


def _nbytes(cache: list[Any]) -> int:
    total = 0
    for layer in cache:
        arrays = [getattr(layer, "keys", None), getattr(layer, "values", None)]
        total += sum(a.nbytes for a in arrays if a is not None) or sum(a.nbytes for a in layer.state)
    return total


def kv_bytes(cache: list[Any]) -> int:
    """Bytes of the tokens a KV cache holds, whatever its kind (full, quantized, rotating)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    leaves = cast("list[tuple[str, Any]]", [leaf for layer in cache for leaf in tree_flatten(layer.state)])
    return sum(int(a.nbytes) for _, a in leaves if isinstance(a, mx.array))


# --- sessions on disk ------------------------------------------------------------------------------
def fingerprint(model_dir: Path) -> str:
    """sha256 over the weights, the config and the tokenizer files (a cache from other weights or
    another tokenizer would be silently wrong)."""
    digest = hashlib.sha256()
    files = sorted(model_dir.glob("*.safetensors")) + [
        model_dir / name for name in ("config.json", "tokenizer.json", "tokenizer_config.json")
    ]
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def save_session(path: Path, entry: Entry, model_id: str, model_fingerprint: str) -> int:
    """Write atomically (temp file in the same directory, then rename); returns the file size."""
    metadata = {
        "format": FORMAT,
        "model_id": model_id,
        "fingerprint": model_fingerprint,
        "session_id": entry.session or "",
        "tokens": json.dumps(entry.tokens.tolist()),
    }
    from mlx_lm.models.cache import save_prompt_cache

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # MLX insists on .safetensors
    try:
        save_prompt_cache(str(temp), entry.cache, metadata)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path.stat().st_size


def load_session(path: Path, model_id: str, model_fingerprint: str) -> tuple[list[int], list[Any]]:
    header = read_header(path)
    if header.get("format") != FORMAT:
        raise SessionFileError(f"{path.name} is not a session file of this runtime")
    if header.get("model_id") != model_id or header.get("fingerprint") != model_fingerprint:
        raise SessionFileError(
            f"{path.name} was saved from model {header.get('model_id')!r} with other weights or tokenizer; "
            f"it cannot be used with {model_id!r}"
        )
    from mlx_lm.models.cache import load_prompt_cache

    try:
        cache, metadata = load_prompt_cache(str(path), return_metadata=True)
        tokens = json.loads(metadata["tokens"])
    except Exception as exc:
        raise SessionFileError(f"{path.name} is corrupt or truncated: {type(exc).__name__}: {exc}") from None
    if not cache or cache[0].offset != len(tokens):
        raise SessionFileError(f"{path.name} is inconsistent: its cache does not hold its {len(tokens)} tokens")
    return tokens, cache


def read_header(path: Path) -> dict[str, str]:
    """Our metadata from the safetensors header, without reading the tensors (mlx-lm's
    save_prompt_cache flattens it under the key prefix "0.")."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100 * 1024 * 1024:
                raise ValueError("header too large")
            header = json.loads(f.read(size))
        flat = header.get("__metadata__", {})
        return {key[2:]: value for key, value in flat.items() if key.startswith("0.")}
    except FileNotFoundError:
        raise SessionFileError(f"no saved session {path.stem}") from None
    except Exception as exc:
        raise SessionFileError(f"{path.name} is corrupt or truncated: {type(exc).__name__}: {exc}") from None
