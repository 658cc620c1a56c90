"""Streamed generation on the real tiny model: same text as mlx-lm, and every sampling param applies."""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import pytest

from runtime.engine.resolve import EMBEDDED_DIR
from tests.conftest import MODEL
from tests.support.harness import RpcFailure, RuntimeClient

STORY = "Once upon a time"
CHAT = [{"role": "user", "content": "Tell me a story about a cat."}]
NO_EOS = {"0": -100, "2": -100}  # keep the model talking for as long as a test needs


def run(client: RuntimeClient, **params: Any) -> dict[str, Any]:
    result = client.request("generate", {"model_id": MODEL, **params})
    return client.collect(result["stream_id"])


@cache
def reference() -> tuple[Any, Any]:
    import mlx.core as mx
    from mlx_lm import load

    mx.disable_compile()
    return load(str(EMBEDDED_DIR / MODEL))


def mlx_lm_text(prompt: str, max_tokens: int) -> str:
    from mlx_lm import generate

    model, tokenizer = reference()
    return generate(model, tokenizer, prompt, max_tokens=max_tokens, verbose=False)


@pytest.mark.parametrize(
    "prompt", [STORY, "Lily had a red ball.", "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"]
)
def test_greedy_stream_text_equals_mlx_lm_generate(runtime: RuntimeClient, prompt: str) -> None:
    streamed = run(runtime, prompt=prompt, max_tokens=80, temperature=0)
    assert streamed["text"] == mlx_lm_text(prompt, 80)
    assert streamed["event"] == {
        "stream_id": streamed["event"]["stream_id"],
        "event": "completed",
        "is_final": True,
        "finish_reason": streamed["stats"]["finish_reason"],
    }


def test_messages_get_the_chat_template_and_match_mlx_lm_on_the_rendered_prompt(runtime: RuntimeClient) -> None:
    _, tokenizer = reference()
    rendered = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert run(runtime, messages=CHAT, max_tokens=60, temperature=0)["text"] == mlx_lm_text(rendered, 60)


def test_the_same_seed_gives_the_same_text_and_another_seed_another(runtime: RuntimeClient) -> None:
    first = run(runtime, prompt=STORY, max_tokens=60, temperature=1.0, seed=11)["text"]
    assert run(runtime, prompt=STORY, max_tokens=60, temperature=1.0, seed=11)["text"] == first
    assert run(runtime, prompt=STORY, max_tokens=60, temperature=1.0, seed=12)["text"] != first


def test_sampling_at_high_temperature_leaves_the_greedy_path(runtime: RuntimeClient) -> None:
    greedy = run(runtime, prompt=STORY, max_tokens=60, temperature=0)["text"]
    assert run(runtime, prompt=STORY, max_tokens=60, temperature=1.5, seed=3)["text"] != greedy


@pytest.mark.parametrize("narrowing", [{"top_k": 1}, {"top_p": 0.001}, {"min_p": 1.0}])
def test_filters_that_leave_one_candidate_make_sampling_greedy(runtime: RuntimeClient, narrowing: dict) -> None:
    greedy = run(runtime, prompt=STORY, max_tokens=50, temperature=0)["text"]
    assert run(runtime, prompt=STORY, max_tokens=50, temperature=1.5, seed=3, **narrowing)["text"] == greedy


def test_logit_bias_forces_a_token(runtime: RuntimeClient) -> None:
    tokens = runtime.request("tokenize", {"model_id": MODEL, "text": " cat", "add_special_tokens": False})["tokens"]
    out = run(runtime, prompt=STORY, max_tokens=8, temperature=0, logit_bias={str(tokens[0]): 100})
    assert [t["token_id"] for t in out["tokens"]] == tokens[:1] * 8


def repeats(token_ids: list[int]) -> int:
    return sum(count - 1 for count in Counter(token_ids).values())


@pytest.mark.parametrize(
    "penalty", [{"repetition_penalty": 3.0}, {"presence_penalty": 2.0}, {"frequency_penalty": 2.0}]
)
def test_penalties_reduce_repeated_tokens(runtime: RuntimeClient, penalty: dict) -> None:
    plain = run(runtime, prompt=STORY, max_tokens=60, temperature=0, logit_bias=NO_EOS)
    penalised = run(runtime, prompt=STORY, max_tokens=60, temperature=0, logit_bias=NO_EOS, **penalty)
    plain_ids = [t["token_id"] for t in plain["tokens"]]
    penalised_ids = [t["token_id"] for t in penalised["tokens"]]
    assert repeats(penalised_ids) < repeats(plain_ids)


def test_max_tokens_ends_with_length_after_exactly_that_many_tokens(runtime: RuntimeClient) -> None:
    out = run(runtime, prompt=STORY, max_tokens=7, temperature=0, logit_bias=NO_EOS)
    assert len(out["tokens"]) == 7 and out["stats"]["tokens_generated"] == 7
    assert out["stats"]["finish_reason"] == "length" and out["event"]["finish_reason"] == "length"


def test_a_stop_sequence_across_a_token_boundary_ends_the_stream_before_it(runtime: RuntimeClient) -> None:
    greedy = run(runtime, prompt=STORY, max_tokens=40, temperature=0, logit_bias=NO_EOS)
    texts = [t["token"] for t in greedy["tokens"]]
    cut = next(i for i in range(3, len(texts)) if len(texts[i - 1]) >= 2 and len(texts[i]) >= 2)
    stop = texts[cut - 1][-2:] + texts[cut][:2]
    full = "".join(texts)
    out = run(runtime, prompt=STORY, max_tokens=40, temperature=0, logit_bias=NO_EOS, stop_sequences=[stop])
    assert out["text"] == full[: full.index(stop)]
    assert stop not in out["text"] and out["event"]["finish_reason"] == "stop"
    assert out["event"]["stop_sequence"] == stop  # which one ended it (Anthropic's stop_sequence)
    assert "stop_sequence" not in greedy["event"]


def test_a_stop_token_id_ends_the_stream_without_sending_it(runtime: RuntimeClient) -> None:
    greedy = run(runtime, prompt=STORY, max_tokens=20, temperature=0, logit_bias=NO_EOS)
    ids = [t["token_id"] for t in greedy["tokens"]]
    stop_id = ids[5]
    out = run(runtime, prompt=STORY, max_tokens=20, temperature=0, logit_bias=NO_EOS, stop_token_ids=[stop_id])
    assert [t["token_id"] for t in out["tokens"]] == ids[: ids.index(stop_id)]
    assert out["event"]["finish_reason"] == "stop"


def test_logprobs_belong_to_the_sampled_token_and_top_logprobs_are_sorted(runtime: RuntimeClient) -> None:
    out = run(runtime, prompt=STORY, max_tokens=10, temperature=0, logprobs=True, top_logprobs=5)
    for token in out["tokens"]:
        top = token["top_logprobs"]
        assert len(top) == 5 and [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert top[0]["token_id"] == token["token_id"]  # greedy picks the most likely token
        assert token["logprob"] == pytest.approx(top[0]["logprob"], abs=1e-5) and token["logprob"] <= 0


def test_prompt_tokens_can_be_sent_instead_of_text(runtime: RuntimeClient) -> None:
    ids = runtime.request("tokenize", {"model_id": MODEL, "text": STORY})["tokens"]
    assert (
        run(runtime, prompt_tokens=ids, max_tokens=30, temperature=0)["text"]
        == run(runtime, prompt=STORY, max_tokens=30, temperature=0)["text"]
    )


def test_every_line_stays_small_even_for_a_long_generation(runtime: RuntimeClient) -> None:
    run(runtime, prompt=STORY, max_tokens=600, temperature=0, logit_bias=NO_EOS)
    import orjson

    assert max(len(orjson.dumps(m)) for m in list(runtime.messages)) < 8192


@pytest.mark.parametrize(
    "params, path",
    [
        ({"prompt": STORY, "messages": CHAT}, ""),
        ({}, ""),
        ({"prompt": ""}, "/prompt"),
        ({"prompt": STORY, "logit_bias": {"999999": 1}}, "/logit_bias/999999"),
        ({"prompt_tokens": [1, 999999]}, "/prompt_tokens/1"),
        ({"prompt": STORY, "max_tokens": 10**9}, "/max_tokens"),
        ({"prompt": "word " * 3000}, "/prompt"),
    ],
)
def test_requests_the_model_cannot_serve_are_refused_with_the_field(
    runtime: RuntimeClient, params: dict, path: str
) -> None:
    with pytest.raises(RpcFailure) as caught:
        runtime.request("generate", {"model_id": MODEL, **params})
    assert caught.value.code == -32602 and caught.value.data["errors"][0]["path"] == path


def test_a_model_that_is_not_loaded_is_model_not_loaded(runtime: RuntimeClient) -> None:
    with pytest.raises(RpcFailure) as caught:
        runtime.request("generate", {"model_id": "not-loaded", "prompt": STORY})
    assert caught.value.code == -32005 and caught.value.data["model_id"] == "not-loaded"
