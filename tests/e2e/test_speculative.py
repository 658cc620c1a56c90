"""Speculative decoding over the real runtime with the project's trained target/draft pair: the
output is the target's own, token for token; pairing, unloading and checking keep things consistent."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.tinymodels.fixtures import build_random_model
from tests.conftest import MODEL, assert_schema_clean, checked, runtime_with, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

DRAFT = "tiny-draft"
PROMPTS = [
    "<|im_start|>user\nTell me a story about a cat.<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, there was a little fox named Ruby. One day",
    "Lily had a red ball and a blue kite.",
]
NO_EOS = {"0": -100, "2": -100}


@pytest.fixture(scope="module")
def pair() -> Iterator[RuntimeClient]:
    with runtime_with(models=(MODEL, DRAFT)) as client:
        yield client


@pytest.fixture
def rt(pair: RuntimeClient) -> Iterator[RuntimeClient]:
    yield from checked(pair)


def run(client: RuntimeClient, **params: Any) -> dict[str, Any]:
    stream_id = client.request("generate", {"model_id": MODEL, **params})["stream_id"]
    return client.collect(stream_id)


@pytest.mark.parametrize("num_draft", [1, 3, 5])
def test_greedy_output_with_a_draft_is_token_for_token_the_targets(rt: RuntimeClient, num_draft: int) -> None:
    for prompt, length in zip(PROMPTS, [90, 40, 130], strict=True):
        plain = run(rt, prompt=prompt, max_tokens=length, temperature=0)
        drafted = run(
            rt, prompt=prompt, max_tokens=length, temperature=0, draft_model=DRAFT, num_draft_tokens=num_draft
        )
        assert [t["token_id"] for t in drafted["tokens"]] == [t["token_id"] for t in plain["tokens"]]
        assert drafted["text"] == plain["text"] and drafted["event"]["finish_reason"] == plain["event"]["finish_reason"]
        stats = drafted["stats"]["draft"]
        assert stats["model_id"] == DRAFT and stats["num_draft_tokens"] == num_draft
        assert stats["drafted"] == stats["accepted"] + stats["rejected"] and stats["accepted"] > 0
        assert sum(t["from_draft"] for t in drafted["tokens"]) == stats["accepted"]
        assert "draft" not in plain["stats"] and "from_draft" not in plain["tokens"][0]


def test_seeded_sampling_with_a_draft_is_reproducible_and_the_same_as_without(rt: RuntimeClient) -> None:
    params = {"prompt": PROMPTS[0], "max_tokens": 100, "temperature": 0.9, "top_p": 0.95, "seed": 1234}
    first = run(rt, **params, draft_model=DRAFT, num_draft_tokens=4)
    again = run(rt, **params, draft_model=DRAFT, num_draft_tokens=4)
    plain = run(rt, **params)
    assert first["text"] == again["text"] == plain["text"]


def test_stops_max_tokens_and_logprobs_behave_as_without_a_draft(rt: RuntimeClient) -> None:
    base = {"prompt": PROMPTS[1], "temperature": 0, "logprobs": True, "top_logprobs": 3}
    plain = run(rt, **base, max_tokens=60)
    stop = plain["text"][25:31]
    for params in ({"max_tokens": 60}, {"max_tokens": 60, "stop_sequences": [stop]}, {"max_tokens": 7}):
        without = run(rt, **base, **params)
        with_draft = run(rt, **base, **params, draft_model=DRAFT, num_draft_tokens=3)
        assert with_draft["text"] == without["text"] and len(with_draft["tokens"]) == len(without["tokens"])
        assert with_draft["event"]["finish_reason"] == without["event"]["finish_reason"]
        for a, b in zip(with_draft["tokens"], without["tokens"], strict=True):
            assert math.isclose(a["logprob"], b["logprob"], abs_tol=1e-3)
            assert [t["token_id"] for t in a["top_logprobs"]] == [t["token_id"] for t in b["top_logprobs"]]
    assert stop not in run(rt, **base, max_tokens=60, stop_sequences=[stop], draft_model=DRAFT)["text"]


def test_structured_output_with_a_draft_is_the_same_output(rt: RuntimeClient) -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "age": {"type": "integer", "minimum": 0, "maximum": 20},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "minItems": 2,
        "maxItems": 3,
    }
    for sampling in ({"temperature": 0}, {"temperature": 0.8, "seed": 9}):
        params = {
            "prompt": PROMPTS[0],
            "max_tokens": 120,
            "guidance": {"mode": "json_schema", "schema": schema},
            **sampling,
        }
        plain = run(rt, **params)
        drafted = run(rt, **params, draft_model=DRAFT, num_draft_tokens=4)
        assert drafted["text"] == plain["text"]
        assert drafted["event"]["guidance"] == {"mode": "json_schema", "complete": True}
        assert drafted["event"]["parsed"] == json.loads(plain["text"])


def test_cancel_stops_a_speculative_stream(rt: RuntimeClient) -> None:
    stream_id = rt.request(
        "generate",
        {
            "model_id": MODEL,
            "prompt": PROMPTS[1],
            "max_tokens": 20000,
            "temperature": 0,
            "logit_bias": NO_EOS,
            "draft_model": DRAFT,
        },
    )["stream_id"]
    stream = rt.stream(stream_id)
    next(stream)
    rt.request("cancel", {"stream_id": stream_id})
    last = list(stream)[-1]
    assert last["method"] == "stream.event" and last["params"]["finish_reason"] == "cancelled"


def test_speculative_streams_run_beside_batched_streams(rt: RuntimeClient) -> None:
    alone = [run(rt, prompt=p, max_tokens=50, temperature=0)["text"] for p in PROMPTS]
    ids = [
        rt.request("generate", {"model_id": MODEL, "prompt": p, "max_tokens": 50, "temperature": 0, **extra})[
            "stream_id"
        ]
        for p, extra in zip(PROMPTS, [{"draft_model": DRAFT}, {}, {}], strict=True)
    ]
    assert [rt.collect(i)["text"] for i in ids] == alone


def test_a_pairing_makes_requests_draft_unless_they_say_null(rt: RuntimeClient) -> None:
    assert rt.request("set_draft", {"model_id": MODEL, "draft_model_id": DRAFT, "num_draft_tokens": 2}) == {
        "model_id": MODEL,
        "draft_model_id": DRAFT,
        "num_draft_tokens": 2,
    }
    try:
        state = {m["model_id"]: m for m in rt.request("runtime/state")["loaded_models"]}
        assert state[MODEL]["draft"] == {"model_id": DRAFT, "num_draft_tokens": 2}
        paired = run(rt, prompt=PROMPTS[0], max_tokens=20, temperature=0)
        assert paired["stats"]["draft"]["num_draft_tokens"] == 2
        assert "draft" not in run(rt, prompt=PROMPTS[0], max_tokens=20, temperature=0, draft_model=None)["stats"]
    finally:
        rt.request("set_draft", {"model_id": MODEL, "draft_model_id": None})
    assert "draft" not in {m["model_id"]: m for m in rt.request("runtime/state")["loaded_models"]}[MODEL]


def test_check_draft_gives_a_real_verdict_for_a_compatible_pair(rt: RuntimeClient) -> None:
    result = rt.request("check_draft", {"primary_id": MODEL, "draft_id": DRAFT})
    assert result["compatible"] and not result["errors"]
    assert all(result["details"]["checks"].values())
    assert 0 < result["details"]["size_ratio"] < 0.5
    assert "measurement" not in result and "performance_estimate" not in result["details"]


def test_check_draft_measures_and_says_slower_for_a_draft_that_cannot_help(rt: RuntimeClient, tmp_path: Path) -> None:
    useless = tmp_path / "useless-draft"  # target-sized, random weights: accepts almost nothing
    build_random_model(useless, arch="llama", hidden_size=192, num_hidden_layers=4, seed=3)
    rt.request("load_model", {"model_id": "useless-draft", "local_path": str(useless)})
    try:
        result = rt.request(
            "check_draft",
            {"primary_id": MODEL, "draft_id": "useless-draft", "measure": True, "probe_tokens": 48},
            timeout=120,
        )
        measurement = result["measurement"]
        assert result["compatible"] and measurement["verdict"] == "slower", measurement
        assert measurement["speedup"] < 0.97 and len(measurement["sweep"]) == 5
        assert result["details"]["performance_estimate"]["expected_speedup"] == f"{measurement['speedup']:.2f}x"
        assert "warnings" in result
    finally:
        rt.request("unload_model", {"model_id": "useless-draft"})


def test_a_draft_with_another_vocabulary_is_refused_at_request_time(rt: RuntimeClient, tmp_path: Path) -> None:
    other = tmp_path / "other-vocab"
    build_random_model(other, arch="llama", seed=1)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[100:102]  # same size, two ids swapped
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    rt.request("load_model", {"model_id": "other-vocab", "local_path": str(other)})
    try:
        verdict = rt.request("check_draft", {"primary_id": MODEL, "draft_id": "other-vocab"})
        assert not verdict["compatible"] and "different vocabularies" in verdict["errors"][0]
        assert verdict["details"]["checks"]["same_vocabulary"] is False
        with pytest.raises(RpcFailure) as failure:
            run(rt, prompt="x", draft_model="other-vocab")
        assert failure.value.code == -32602 and failure.value.data["errors"][0]["path"] == "/draft_model"
        assert "different vocabularies" in failure.value.data["errors"][0]["message"]
    finally:
        rt.request("unload_model", {"model_id": "other-vocab"})
    with pytest.raises(RpcFailure) as failure:
        run(rt, prompt="x", draft_model="not-loaded-draft")
    assert failure.value.code == -32005


def test_unloading_the_draft_mid_stream_lets_the_stream_finish_as_the_target_alone(tmp_path: Path) -> None:
    client = spawn_runtime()
    try:
        info = client.request("load_model", {"model_id": MODEL, "draft_model_id": DRAFT, "num_draft_tokens": 3})
        assert info["draft"] == {"model_id": DRAFT, "num_draft_tokens": 3}  # the draft was loaded for it
        expected = run(client, prompt=PROMPTS[1], max_tokens=400, temperature=0, logit_bias=NO_EOS, draft_model=None)
        stream_id = client.request(
            "generate",
            {"model_id": MODEL, "prompt": PROMPTS[1], "max_tokens": 400, "temperature": 0, "logit_bias": NO_EOS},
        )["stream_id"]
        stream = client.stream(stream_id)
        first = next(stream)
        client.request("unload_model", {"model_id": DRAFT})
        rest = list(stream)
        text = "".join(
            t["token"] for m in [first, *rest] if m["method"] == "stream.chunk" for t in m["params"]["tokens"]
        )
        assert text == expected["text"] and rest[-1]["params"]["finish_reason"] == "length"
        assert "draft" not in client.request("runtime/state")["loaded_models"][0]
        with pytest.raises(RpcFailure):
            run(client, prompt="x", draft_model=DRAFT)
        assert_schema_clean(client)
    finally:
        client.close()


def test_unloading_the_target_ends_its_speculative_streams_and_its_pairing() -> None:
    client = spawn_runtime()
    try:
        client.request("load_model", {"model_id": MODEL, "draft_model_id": DRAFT})
        stream_id = client.request(
            "generate",
            {"model_id": MODEL, "prompt": PROMPTS[0], "max_tokens": 20000, "temperature": 0, "logit_bias": NO_EOS},
        )["stream_id"]
        stream = client.stream(stream_id)
        next(stream)
        client.request("unload_model", {"model_id": MODEL})
        assert list(stream)[-1]["params"]["finish_reason"] == "cancelled"
        assert [m["model_id"] for m in client.request("runtime/state")["loaded_models"]] == [DRAFT]
        client.request("load_model", {"model_id": MODEL})
        assert "draft" not in {m["model_id"]: m for m in client.request("runtime/state")["loaded_models"]}[MODEL]
        assert_schema_clean(client)
    finally:
        client.close()


def test_draft_tokens_without_a_draft_are_refused(rt: RuntimeClient) -> None:
    with pytest.raises(RpcFailure) as failure:
        run(rt, prompt="x", num_draft_tokens=3)
    assert failure.value.data["errors"][0]["path"] == "/num_draft_tokens"


def test_batch_check_draft_answers_each_entry_on_its_own_in_order(rt: RuntimeClient) -> None:
    requests = [
        {"primary_id": MODEL, "draft_id": DRAFT},
        {"primary_id": MODEL, "draft_id": "not-loaded-draft"},
        {"primary_id": DRAFT, "draft_id": MODEL},
        {"primary_id": MODEL},
    ]
    results = rt.request("batch_check_draft", {"requests": requests})["results"]
    assert len(results) == 4
    good, missing, reversed_pair, malformed = results
    assert good == {"success": True, "result": rt.request("check_draft", requests[0]), "error": None}
    assert missing == {
        "success": False,
        "result": None,
        "error": "Draft model not loaded: not-loaded-draft",
        "code": -32005,
        "data": {"type": "ModelNotLoaded", "model_id": "not-loaded-draft"},
    }
    assert reversed_pair["success"] and reversed_pair["result"]["compatible"]
    assert "the draft is not smaller than the target" in reversed_pair["result"]["warnings"][0]
    assert not malformed["success"] and malformed["code"] == -32602
    assert malformed["data"]["errors"] == [{"path": "/requests/3/draft_id", "message": "is required"}]


def test_batch_check_draft_measures_only_the_entries_that_ask(rt: RuntimeClient) -> None:
    measured, plain = rt.request(
        "batch_check_draft",
        {
            "requests": [
                {"primary_id": MODEL, "draft_id": DRAFT, "measure": True, "num_draft_tokens": 2, "probe_tokens": 16},
                {"primary_id": MODEL, "draft_id": DRAFT},
            ]
        },
        timeout=120,
    )["results"]
    assert measured["success"] and plain["success"]
    measurement = measured["result"]["measurement"]
    assert measurement["num_draft_tokens"] == 2 and measurement["probe_tokens"] == 16
    assert [row["num_draft_tokens"] for row in measurement["sweep"]] == [2]
    assert measurement["baseline_tokens_per_second"] > 0 and 0 <= measurement["acceptance_rate"] <= 1
    estimate = measured["result"]["details"]["performance_estimate"]
    assert estimate["expected_speedup"] == f"{measurement['speedup']:.2f}x"
    assert "measurement" not in plain["result"] and "performance_estimate" not in plain["result"]["details"]


def test_runtime_info_advertises_batch_check_draft_beside_check_draft(rt: RuntimeClient) -> None:
    capabilities = rt.request("runtime/info")["capabilities"]
    assert {"check_draft", "batch_check_draft", "batch_tokenize"} <= set(capabilities)


def test_a_load_with_a_draft_shares_the_drafts_load_already_in_flight() -> None:
    client = spawn_runtime()
    try:
        draft_load = client.call_async("load_model", {"model_id": DRAFT})
        paired_load = client.call_async("load_model", {"model_id": MODEL, "draft_model_id": DRAFT})
        assert draft_load.result(60)["result"]["model_id"] == DRAFT
        assert paired_load.result(60)["result"]["draft"] == {"model_id": DRAFT, "num_draft_tokens": 3}
        stages = [
            m["params"]["stage"]
            for m in list(client.messages)
            if m.get("method") == "model.progress" and m["params"]["model_id"] == DRAFT
        ]
        assert stages == ["resolving", "loading", "warming", "ready"]
        assert_schema_clean(client)
    finally:
        client.close()
