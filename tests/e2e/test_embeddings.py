"""embed and rerank over the real runtime: batched forward passes that equal one-by-one results,
normalisation and Matryoshka dimensions, truncation, the embedding cache, precise errors, both
model families (a decoder loaded to embed, the project's tiny encoder embedder and reranker),
meaning checked with the trained tiny models, and streams that keep flowing while embeddings run."""

from __future__ import annotations

import base64
import math
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import MODEL, checked, runtime_with
from tests.support.harness import RpcFailure, RuntimeClient

DECODER = "tiny-chat-embed"  # tiny-chat loaded to embed: last-token pooling over its final norm
ENCODER = "tiny-embed"  # the project's contrastive BERT, through mlx-embeddings
LAST_TOKEN = "tiny-embed-decoder"  # the project's Qwen3-Embedding-style decoder embedder
RERANKER = "tiny-rerank"  # the project's Qwen3-Reranker-style decoder
TIMEOUT = 60.0
SENTENCES = [
    "The cat sat on the mat.",
    "A recipe for homemade bread with flour, water and yeast.",
    "Interest rates rose again this quarter.",
    "How do I change a flat tyre on my bike?",
    "The football match ended in a draw after extra time.",
    "Plant tomatoes in a sunny spot and water them every morning.",
    "ok",
]


CROSS = "random-cross-encoder"  # a random-weight ModernBERT classifier built for the test (mechanics only)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeClient]:
    from runtime.engine.resolve import EMBEDDED_DIR
    from runtime.tinymodels.fixtures import build_random_cross_encoder

    cross = tmp_path_factory.mktemp("cross") / CROSS
    build_random_cross_encoder(cross, EMBEDDED_DIR / ENCODER)
    with runtime_with("--max-embed-inputs", "200", models=(MODEL, ENCODER, RERANKER, LAST_TOKEN)) as client:
        client.request("load_model", {"model_id": DECODER, "local_path": str(EMBEDDED_DIR / MODEL), "task": "embed"})
        client.request("load_model", {"model_id": CROSS, "local_path": str(cross)})
        yield client


@pytest.fixture
def runtime(shared: RuntimeClient) -> Iterator[RuntimeClient]:
    yield from checked(shared)


def embed(runtime: RuntimeClient, model: str, inputs: Any, **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = runtime.request("embed", {"model_id": model, "input": inputs, **options}, timeout=TIMEOUT)
    return result


def vectors(result: dict[str, Any]) -> list[list[float]]:
    return [entry["embedding"] for entry in sorted(result["data"], key=lambda e: e["index"])]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def close(a: list[float], b: list[float], tolerance: float = 1e-4) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tolerance


def error_of(runtime: RuntimeClient, method: str, params: dict[str, Any]) -> RpcFailure:
    with pytest.raises(RpcFailure) as caught:
        runtime.request(method, params, timeout=TIMEOUT)
    return caught.value


def paths(failure: RpcFailure) -> list[str]:
    return [entry["path"] for entry in (failure.data or {}).get("errors", [])]


# --- batching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [DECODER, ENCODER])
def test_a_batch_of_inputs_gives_the_vectors_each_input_gives_alone(runtime: RuntimeClient, model: str) -> None:
    together = embed(runtime, model, SENTENCES, normalize=False)
    assert together["batches"] == 1  # one padded forward pass for all seven, not one per input
    for sentence, vector in zip(SENTENCES, vectors(together), strict=True):
        single = vectors(embed(runtime, model, [sentence], normalize=False))[0]
        assert close(vector, single, 2e-4), sentence


def test_many_inputs_are_split_into_bounded_forward_passes(runtime: RuntimeClient) -> None:
    texts = [f"sentence {i} about the weather in town" for i in range(100)]
    result = embed(runtime, DECODER, texts)
    assert len(result["data"]) == 100
    assert [entry["index"] for entry in result["data"]] == list(range(100))
    assert result["batches"] >= math.ceil(100 / 32)  # embed_batch_size is 32 by default


# --- vectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [DECODER, ENCODER])
def test_vectors_are_unit_length_unless_normalize_is_false(runtime: RuntimeClient, model: str) -> None:
    unit = vectors(embed(runtime, model, SENTENCES[:3]))
    raw = vectors(embed(runtime, model, SENTENCES[:3], normalize=False))
    for u, r in zip(unit, raw, strict=True):
        assert abs(math.sqrt(sum(x * x for x in u)) - 1) < 1e-5
        norm = math.sqrt(sum(x * x for x in r))
        assert abs(norm - 1) > 1e-3
        assert close(u, [x / norm for x in r], 1e-5)


def test_dimensions_keep_the_first_components_and_normalise_again(runtime: RuntimeClient) -> None:
    raw = vectors(embed(runtime, DECODER, SENTENCES[:2], normalize=False))
    short = embed(runtime, DECODER, SENTENCES[:2], dimensions=16)
    assert short["dimensions"] == 16
    for vector, full in zip(vectors(short), raw, strict=True):
        head = full[:16]
        norm = math.sqrt(sum(x * x for x in head))
        assert len(vector) == 16
        assert close(vector, [x / norm for x in head], 1e-5)


def test_base64_vectors_decode_to_the_float_vectors(runtime: RuntimeClient) -> None:
    floats = vectors(embed(runtime, DECODER, SENTENCES[:2]))
    encoded = embed(runtime, DECODER, SENTENCES[:2], encoding_format="base64")
    assert encoded["encoding_format"] == "base64"
    for text, vector in zip(vectors(encoded), floats, strict=True):
        raw = base64.b64decode(text)
        assert len(raw) == 4 * len(vector)
        assert close(list(struct.unpack(f"<{len(vector)}f", raw)), vector, 1e-6)


def test_token_id_inputs_are_embedded_as_given(runtime: RuntimeClient) -> None:
    ids = runtime.request(
        "tokenize", {"model_id": MODEL, "text": "The cat sat on the mat.", "add_special_tokens": False}
    )
    end = runtime.request("tokenize", {"model_id": MODEL, "text": "<|endoftext|>", "add_special_tokens": False})
    from_text = vectors(embed(runtime, DECODER, "The cat sat on the mat."))[0]
    from_ids = embed(runtime, DECODER, [ids["tokens"] + end["tokens"]])
    assert close(vectors(from_ids)[0], from_text, 1e-5)
    assert from_ids["usage"]["prompt_tokens"] == len(ids["tokens"]) + 1


# --- truncation ----------------------------------------------------------------------------------
def test_truncation_cuts_the_end_or_the_start_and_none_refuses(runtime: RuntimeClient) -> None:
    long_text = " ".join(f"word{i}" for i in range(3000))
    end = embed(runtime, DECODER, ["short", long_text])
    start = embed(runtime, DECODER, ["short", long_text], truncate="start")
    assert end["truncated"] == [1] and start["truncated"] == [1]
    assert end["usage"]["prompt_tokens"] == start["usage"]["prompt_tokens"]
    assert not close(vectors(end)[1], vectors(start)[1], 1e-3)  # different halves of the text
    refused = error_of(runtime, "embed", {"model_id": DECODER, "input": ["short", long_text], "truncate": "none"})
    assert refused.code == -32602 and paths(refused) == ["/input/1"]
    assert "truncate" in refused.data["errors"][0]["message"]


# --- the cache -----------------------------------------------------------------------------------
def test_a_repeated_input_is_served_from_the_cache(runtime: RuntimeClient) -> None:
    texts = ["cache me once", "and me too"]
    first = embed(runtime, DECODER, texts)
    assert first["usage"]["cached_inputs"] == 0 and first["batches"] == 1
    again = embed(runtime, DECODER, [*texts, "but not me"])
    assert again["usage"]["cached_inputs"] == 2
    assert again["usage"]["cached_tokens"] == first["usage"]["prompt_tokens"]
    assert again["batches"] == 1  # only the new input ran
    assert vectors(again)[:2] == vectors(first)
    whole = embed(runtime, DECODER, texts, dimensions=8)  # options applied after the cache
    assert whole["usage"]["cached_inputs"] == 2 and whole["batches"] == 0
    other_pooling = embed(runtime, DECODER, texts, pooling="mean")
    assert other_pooling["usage"]["cached_inputs"] == 0


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"input": [""]}, "/input/0"),
        ({"input": ["fine", ""]}, "/input/1"),
        ({"input": []}, "/input"),
        ({"input": [[1, 2], [99999]]}, "/input/1/0"),
        ({"input": "x", "dimensions": 4096}, "/dimensions"),
        ({"input": "x", "pooling": "cls"}, "/pooling"),
        ({"input": "x", "input_type": "poem"}, "/input_type"),
        ({"input": "x", "encoding_format": "hex"}, "/encoding_format"),
        ({"input": "x", "normalize": "yes"}, "/normalize"),
        ({"input": ["x"] * 201}, "/input"),
    ],
)
def test_bad_embed_inputs_get_a_precise_error(runtime: RuntimeClient, params: dict[str, Any], path: str) -> None:
    failure = error_of(runtime, "embed", {"model_id": DECODER, **params})
    assert failure.code == -32602
    assert path in paths(failure)


def test_a_model_of_another_kind_is_refused_naming_its_kind(runtime: RuntimeClient) -> None:
    failure = error_of(runtime, "embed", {"model_id": MODEL, "input": "hello"})
    assert failure.code == -32602 and paths(failure) == ["/model_id"]
    assert "text-generation" in failure.data["errors"][0]["message"]
    failure = error_of(runtime, "rerank", {"model_id": ENCODER, "query": "q", "documents": ["d"]})
    assert "embedding model" in failure.data["errors"][0]["message"]
    failure = error_of(runtime, "generate", {"model_id": ENCODER, "prompt": "hello"})
    assert failure.code == -32602 and "does not generate" in failure.data["errors"][0]["message"]
    generated = runtime.collect(
        runtime.request("generate", {"model_id": MODEL, "prompt": "Hi", "max_tokens": 3})["stream_id"]
    )
    assert generated["event"]["finish_reason"] in ("stop", "length")  # other work is unaffected


def test_loaded_models_say_what_they_serve(runtime: RuntimeClient) -> None:
    state = {m["model_id"]: m for m in runtime.request("runtime/state", {})["loaded_models"]}
    assert state[DECODER]["type"] == "embedding" and state[ENCODER]["type"] == "embedding"
    assert state[RERANKER]["type"] == "reranker" and state[MODEL]["type"] == "text"
    assert state[CROSS]["type"] == "reranker"
    info = runtime.request("load_model", {"model_id": ENCODER})
    assert info["task"] == "embed" and info["pooling"]["family"] == "encoder"
    assert info["pooling"]["pooling"] == "mean" and "cls" in info["pooling"]["poolings"]


# --- the encoder embedder and the reranker (the project's trained tiny models) ---------------------
PARAPHRASES = [
    ("The cat sat on the mat.", "A cat was sitting on the mat.", "Interest rates rose again."),
    ("How do I bake bread at home?", "A recipe for homemade bread.", "The stock market fell sharply today."),
    ("It is raining heavily in the city.", "Heavy rain is falling over the town.", "She plays the violin well."),
]


@pytest.mark.parametrize(("anchor", "paraphrase", "unrelated"), PARAPHRASES)
def test_a_paraphrase_is_closer_than_an_unrelated_sentence(
    runtime: RuntimeClient, anchor: str, paraphrase: str, unrelated: str
) -> None:
    a, p, u = vectors(embed(runtime, ENCODER, [anchor, paraphrase, unrelated]))
    assert cosine(a, p) > cosine(a, u)


def test_the_decoder_embedder_reads_the_last_token_and_takes_query_prompts(runtime: RuntimeClient) -> None:
    info = runtime.request("load_model", {"model_id": LAST_TOKEN})
    assert info["task"] == "embed" and info["pooling"]["family"] == "decoder"
    assert info["pooling"]["pooling"] == "last" and "query" in info["pooling"]["prompts"]
    for anchor, paraphrase, unrelated in PARAPHRASES[:2]:
        a, p, u = vectors(embed(runtime, LAST_TOKEN, [anchor, paraphrase, unrelated]))
        assert cosine(a, p) > cosine(a, u)
    plain = embed(runtime, LAST_TOKEN, "How do I bake bread?")
    query = embed(runtime, LAST_TOKEN, "How do I bake bread?", input_type="query")
    custom = embed(runtime, LAST_TOKEN, "How do I bake bread?", instruction="Find a recipe")
    assert query["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]  # the model's query prompt went first
    assert not close(vectors(query)[0], vectors(custom)[0], 1e-4)
    refused = error_of(runtime, "embed", {"model_id": ENCODER, "input": "x", "instruction": "Find"})
    assert paths(refused) == ["/instruction"]


def test_the_encoder_takes_another_pooling_where_its_family_allows_it(runtime: RuntimeClient) -> None:
    mean = vectors(embed(runtime, ENCODER, SENTENCES[:2]))
    cls = embed(runtime, ENCODER, SENTENCES[:2], pooling="cls")
    assert not close(vectors(cls)[0], mean[0], 1e-3)
    refused = error_of(runtime, "embed", {"model_id": ENCODER, "input": "x", "pooling": "last"})
    assert paths(refused) == ["/pooling"]


def test_the_relevant_document_ranks_first(runtime: RuntimeClient) -> None:
    documents = [
        "The stock market fell sharply today as investors worried about interest rates.",
        "Mix flour, water, salt and yeast, knead the dough, let it rise and bake it for forty minutes.",
        "The football team won the championship after a penalty shoot-out.",
        "Water your tomato plants every morning and keep them in the sun.",
    ]
    result = runtime.request(
        "rerank",
        {
            "model_id": RERANKER,
            "query": "How do I bake bread at home?",
            "documents": documents,
            "return_documents": True,
        },
        timeout=TIMEOUT,
    )
    ranked = result["results"]
    assert [r["index"] for r in ranked][0] == 1
    assert ranked[0]["document"]["text"] == documents[1]
    scores = [r["relevance_score"] for r in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert result["batches"] == 1


def test_rerank_scores_in_a_batch_equal_scores_alone_and_top_n_cuts(runtime: RuntimeClient) -> None:
    documents = ["Bread needs flour and yeast.", "Rates rose.", "Cats like to sleep in the sun."]
    together = runtime.request("rerank", {"model_id": RERANKER, "query": "baking bread", "documents": documents})
    by_index = {r["index"]: r["relevance_score"] for r in together["results"]}
    for index, document in enumerate(documents):
        alone = runtime.request("rerank", {"model_id": RERANKER, "query": "baking bread", "documents": [document]})
        assert abs(alone["results"][0]["relevance_score"] - by_index[index]) < 1e-4
    top = runtime.request("rerank", {"model_id": RERANKER, "query": "baking bread", "documents": documents, "top_n": 2})
    assert [r["index"] for r in top["results"]] == [r["index"] for r in together["results"]][:2]
    assert "document" not in top["results"][0]


def test_a_cross_encoder_scores_pairs_in_one_batch_like_one_by_one(runtime: RuntimeClient) -> None:
    documents = ["Bread needs flour and yeast.", "Rates rose.", "Cats sleep in the sun. " * 60]
    together = runtime.request("rerank", {"model_id": CROSS, "query": "baking bread", "documents": documents})
    assert together["batches"] == 1 and together["truncated"] == []
    by_index = {r["index"]: r["relevance_score"] for r in together["results"]}
    for index, document in enumerate(documents):
        alone = runtime.request("rerank", {"model_id": CROSS, "query": "baking bread", "documents": [document]})
        assert abs(alone["results"][0]["relevance_score"] - by_index[index]) < 1e-4
    refused = error_of(runtime, "embed", {"model_id": CROSS, "input": "x"})
    assert "task" not in refused.data["errors"][0]["message"].split(";")[1]  # a classifier cannot embed


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"query": "q", "documents": ["fine", ""]}, "/documents/1"),
        ({"query": "", "documents": ["d"]}, "/query"),
        ({"query": "q", "documents": []}, "/documents"),
        ({"query": "q", "documents": ["d"], "top_n": 0}, "/top_n"),
        ({"query": "q", "documents": ["d " * 5000], "truncate": "none"}, "/documents/0"),
    ],
)
def test_bad_rerank_inputs_get_a_precise_error(runtime: RuntimeClient, params: dict[str, Any], path: str) -> None:
    failure = error_of(runtime, "rerank", {"model_id": RERANKER, **params})
    assert failure.code == -32602
    assert path in paths(failure)


# --- next to generation ----------------------------------------------------------------------------
def test_a_long_generation_keeps_streaming_while_100_embeddings_are_computed(runtime: RuntimeClient) -> None:
    never_end = {"0": -100, "2": -100}  # tiny-chat's two EOS tokens: the stream runs until cancelled
    stream_id = runtime.request(
        "generate",
        {
            "model_id": MODEL,
            "prompt": "Once upon a time",
            "max_tokens": 20000,
            "temperature": 0,
            "logit_bias": never_end,
        },
    )["stream_id"]
    texts = [" ".join(["a long sentence about the garden and the weather"] * 12) + f" {i}" for i in range(100)]
    arrivals: list[float] = []
    answer: dict[str, Any] = {}

    def read_stream() -> None:
        for message in runtime.stream(stream_id, TIMEOUT):
            if message["method"] == "stream.chunk":
                arrivals.append(time.perf_counter())
            elif message["method"] == "stream.event":
                answer["event"] = message["params"]

    reader = threading.Thread(target=read_stream)
    reader.start()
    while len(arrivals) < 3:  # the stream is decoding
        time.sleep(0.01)
    began = time.perf_counter()
    result = embed(runtime, DECODER, texts)
    ended = time.perf_counter()
    runtime.request("cancel", {"stream_id": stream_id})
    reader.join(TIMEOUT)
    assert len(result["data"]) == 100 and result["batches"] >= 4  # bounded passes, not one
    during = [t for t in arrivals if began < t < ended]
    assert len(during) >= 3  # tokens kept coming between the embedding passes
    assert answer["event"]["finish_reason"] == "cancelled"  # the stream outlived the embeddings


def test_an_embed_request_can_be_cancelled(runtime: RuntimeClient) -> None:
    texts = [" ".join(["cancel this long input about trains and stations"] * 20) + f" {i}" for i in range(200)]
    pending = runtime.call_async("embed", {"model_id": DECODER, "input": texts}, request_id="embed-to-cancel")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the job shows in the registry like a stream, on its path
        listed = runtime.request("runtime/state", {})["streams"]
        if any(s.get("path") == "pooling" and s["model_id"] == DECODER for s in listed):
            break
    else:
        pytest.fail("the embed job never showed in runtime/state")
    runtime.notify("$/cancelRequest", {"id": "embed-to-cancel"})
    response = pending.result(TIMEOUT)
    assert "error" in response and response["error"]["code"] == -32009
    assert embed(runtime, DECODER, "still serving")["data"]
