"""The prompt cache's rules on real MLX caches (no model): copies never write into entries,
untrimmable caches are never kept, budgets hold, and the longest shared prefix wins."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import KVCache, RotatingKVCache

from runtime.engine.prompt_cache import PromptCache

LAYERS, HEADS, DIM = 2, 1, 8


def filled(tokens: list[int], cache_type: type = KVCache) -> list:
    """A cache holding one K/V row per token, each row's values equal to its token id."""
    cache = [cache_type() if cache_type is KVCache else cache_type(max_size=4) for _ in range(LAYERS)]
    rows = mx.array(tokens, dtype=mx.float32).reshape(1, 1, -1, 1) * mx.ones((1, HEADS, len(tokens), DIM))
    for layer in cache:
        layer.update_and_fetch(rows, rows)
    mx.eval([(layer.keys, layer.values) for layer in cache])
    return cache


def rows_of(cache: list) -> list[float]:
    return cache[0].keys[0, 0, : cache[0].offset, 0].tolist()


def test_a_copy_written_after_the_shared_prefix_leaves_the_entry_untouched() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=4)
    prompt_cache.store(list(range(10, 20)), filled(list(range(10, 20))))
    copy, shared = prompt_cache.lookup([10, 11, 12, 99, 98])
    assert shared == 3 and rows_of(copy) == [10, 11, 12]
    new_rows = mx.full((1, HEADS, 2, DIM), 7.0)
    for layer in copy:
        layer.update_and_fetch(new_rows, new_rows)
    assert rows_of(copy) == [10, 11, 12, 7, 7]
    again, shared_again = prompt_cache.lookup(list(range(10, 20)) + [5])
    assert shared_again == 10 and rows_of(again) == [float(t) for t in range(10, 20)]


def test_the_last_prompt_token_is_always_left_to_prefill() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=4)
    prompt_cache.store([1, 2, 3, 4], filled([1, 2, 3, 4]))
    _, shared = prompt_cache.lookup([1, 2, 3, 4])
    assert shared == 3


def test_an_untrimmable_cache_is_never_kept() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=4)
    rotating = filled([1, 2, 3, 4, 5, 6], RotatingKVCache)
    prompt_cache.store([1, 2, 3, 4, 5, 6], rotating)
    assert prompt_cache.stats()["entries"] == 0
    assert prompt_cache.lookup([1, 2, 3, 4, 5, 6, 7]) == (None, 0)


def test_a_cache_that_does_not_hold_its_tokens_is_refused() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=4)
    prompt_cache.store([1, 2, 3], filled([1, 2, 3, 4]))
    assert prompt_cache.stats()["entries"] == 0


def test_a_longer_turn_supersedes_its_prefix_and_the_longest_shared_prefix_wins() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=8)
    prompt_cache.store([1, 2, 3], filled([1, 2, 3]))
    prompt_cache.store([1, 2, 3, 4, 5], filled([1, 2, 3, 4, 5]))  # the same conversation, one turn on
    prompt_cache.store([1, 9, 9], filled([1, 9, 9]))
    assert prompt_cache.stats()["entries"] == 2
    copy, shared = prompt_cache.lookup([1, 2, 3, 4, 6, 7])
    assert shared == 4 and rows_of(copy) == [1, 2, 3, 4]


def test_least_recently_used_entries_go_first_and_sessions_stay() -> None:
    prompt_cache = PromptCache(max_bytes=1 << 30, max_entries=2)
    prompt_cache.store([1, 1], filled([1, 1]), session="pinned")
    prompt_cache.store([2, 2], filled([2, 2]))
    prompt_cache.lookup([2, 2, 5])  # [2, 2] is now the most recently used unpinned entry
    prompt_cache.store([3, 3], filled([3, 3]))
    assert [s["session_id"] for s in prompt_cache.sessions()] == ["pinned"]
    assert prompt_cache.lookup([2, 2, 5])[1] == 0 and prompt_cache.lookup([3, 3, 5])[1] == 2
    budget = PromptCache(max_bytes=prompt_cache.stats()["bytes"] // 2, max_entries=8)
    budget.store([4, 4], filled([4, 4]))
    budget.store([5, 5], filled([5, 5]))
    assert budget.stats()["entries"] == 1 and budget.stats()["bytes"] <= budget.max_bytes
