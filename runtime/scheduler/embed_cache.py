"""Embeddings kept for reuse: least recently used out, bounded in entries and in bytes.

A key is (model id, the weights' fingerprint, pooling, a digest of the input's token ids): the
ids already hold the text, the prompt or instruction and the truncation, so one text embedded
under other options is another key. What is kept is the pooled float32 vector before
normalisation and truncation to `dimensions`, which are applied per request. Any thread may call it.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

CacheKey = tuple[str, str, str, bytes]


def input_key(model_id: str, fingerprint: str, pooling: str, token_ids: Sequence[int]) -> CacheKey:
    digest = hashlib.blake2b(array("q", token_ids).tobytes(), digest_size=16).digest()
    return model_id, fingerprint, pooling, digest


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    hits: int
    misses: int


class EmbeddingCache:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def get(self, key: CacheKey) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: CacheKey, value: bytes) -> None:
        if not self.enabled or len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = value
            self._bytes += len(value)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._items), self._bytes, self._hits, self._misses)
