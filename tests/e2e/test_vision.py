"""Vision-language models through mlx-vlm over the real runtime: every image source, several images,
images in earlier turns, output equal to mlx-vlm's own, and every bad image refused before model work."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MODEL, assert_schema_clean, checked, runtime_with, spawn_runtime
from tests.support.harness import RpcFailure, RuntimeClient

VLM = "tiny-vlm"
QUESTION = "Tell me about this picture."
MAX_BYTES, MAX_PIXELS, MAX_IMAGES = 200_000, 1_000_000, 3


def picture(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype("uint8"))


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    return base64.b64encode(encoded(image, fmt)).decode()


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def image_url(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


TEXT = {"type": "text", "text": QUESTION}


class _SlowWhenAsked(http.server.SimpleHTTPRequestHandler):
    """Serves files; a path ending in ?slow answers after a second (an image still being fetched)."""

    def do_GET(self) -> None:
        if self.path.endswith("?slow"):
            time.sleep(1.0)
            self.path = self.path.removesuffix("?slow")
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory of images, also served over HTTP on localhost (only /allowed/ is allow-listed)."""
    root = tmp_path_factory.mktemp("images")
    (root / "allowed").mkdir()
    picture(1).save(root / "allowed" / "one.png")
    picture(2).save(root / "two.jpg")
    handler = functools.partial(_SlowWhenAsked, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def vision(served: tuple[Path, str]) -> Iterator[RuntimeClient]:
    root, base = served
    limits = [
        "--max-image-bytes",
        str(MAX_BYTES),
        "--max-image-pixels",
        str(MAX_PIXELS),
        "--max-images",
        str(MAX_IMAGES),
    ]
    allowed = ["--allow-image-dir", str(root / "allowed"), "--allow-image-url", f"{base}/allowed/"]
    with runtime_with("--stdio", *allowed, *limits, models=(VLM, MODEL)) as client:
        yield client


@pytest.fixture
def rt(vision: RuntimeClient) -> Iterator[RuntimeClient]:
    yield from checked(vision)


def run(client: RuntimeClient, method: str = "generate", **params: Any) -> dict[str, Any]:
    body = {"model_id": VLM, "max_tokens": 24, "temperature": 0, **params}
    return client.collect(client.request(method, body)["stream_id"])


@functools.cache
def direct_model() -> tuple[Any, Any, Any]:
    from runtime.engine.resolve import resolve
    from runtime.engine.vlm import load_vision

    return load_vision(resolve(VLM).path, [2, 0])


def direct(messages: list[dict[str, Any]], images: list[Image.Image], **sampling: Any) -> str:
    """mlx-vlm's own generate on the same files, messages and images."""
    from mlx_vlm import generate

    model, processor, tokenizer = direct_model()
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return generate(model, processor, prompt, image=images, max_tokens=24, **sampling).text


def test_every_image_source_gives_mlx_vlms_own_greedy_output(rt: RuntimeClient, served: tuple[Path, str]) -> None:
    root, base = served
    one = Image.open(root / "allowed" / "one.png").convert("RGB")
    expected = direct([user({"type": "image"}, TEXT)], [one])
    raw = b64(one)
    sources = [
        image_url(f"data:image/png;base64,{raw}"),
        image_url(raw),
        {"type": "image", "data": raw},
        {"type": "image", "path": str(root / "allowed" / "one.png")},
        image_url(str(root / "allowed" / "one.png")),
        {"type": "image", "url": f"{base}/allowed/one.png"},
        image_url(f"{base}/allowed/one.png"),
    ]
    for source in sources:
        outcome = run(rt, messages=[user(source, TEXT)])
        assert outcome["text"] == expected, source
        assert outcome["stats"]["images"] == 1 and outcome["stats"]["prompt_tokens"] > 16


def test_two_images_and_an_image_in_an_earlier_turn(rt: RuntimeClient) -> None:
    first, second = picture(5), picture(6)
    two = [user(image_url(b64(first)), {"type": "text", "text": "and"}, image_url(b64(second)), TEXT)]
    outcome = run(rt, messages=two)
    assert outcome["stats"]["images"] == 2
    assert outcome["text"] == direct(
        [user({"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}, TEXT)], [first, second]
    )
    turns = [
        user(image_url(b64(first)), TEXT),
        {"role": "assistant", "content": "It is a picture of a cat."},
        user({"type": "text", "text": "What else is there?"}),
    ]
    later = run(rt, messages=turns)
    assert later["stats"]["images"] == 1
    expected = direct(
        [user({"type": "image"}, TEXT), turns[1], user({"type": "text", "text": "What else is there?"})], [first]
    )
    assert later["text"] == expected


def test_seeded_sampling_is_reproducible_and_the_image_matters(rt: RuntimeClient) -> None:
    params = {"temperature": 1.0, "seed": 21, "max_tokens": 40}
    a = run(rt, messages=[user(image_url(b64(picture(7))), TEXT)], **params)
    again = run(rt, messages=[user(image_url(b64(picture(7))), TEXT)], **params)
    others = {run(rt, messages=[user(image_url(b64(picture(s))), TEXT)], **params)["text"] for s in (8, 9, 10)}
    assert a["text"] == again["text"]
    assert others - {a["text"]}, "different images should lead to different sampled text"


def test_generate_with_image_is_the_peers_single_image_call(rt: RuntimeClient) -> None:
    image = picture(3)
    outcome = run(rt, "generate_with_image", prompt="What is in the picture?", image=b64(image, "JPEG"), max_tokens=12)
    assert outcome["stats"]["images"] == 1 and outcome["event"]["event"] == "completed"
    info = rt.request("load_vision_model", {"model_id": VLM})
    assert info["is_vision_model"] and info["processor_type"] == "LlavaProcessor" and info["image_size"] == 56


def test_a_plain_prompt_on_the_peer_method_is_rendered_through_the_chat_template_and_the_image_matters(
    rt: RuntimeClient,
) -> None:
    def ask(seed: int, **params: Any) -> dict[str, Any]:
        image = b64(picture(seed))
        return run(rt, "generate_with_image", prompt=QUESTION, image=image, max_tokens=30, temperature=0, **params)

    templated = [ask(seed) for seed in (1, 2, 3, 4)]
    raw = ask(1, raw_prompt=True)
    assert all(out["text"] for out in templated) and len({out["text"] for out in templated}) > 1
    assert raw["stats"]["prompt_tokens"] < templated[0]["stats"]["prompt_tokens"]  # no template around it


def test_stops_max_tokens_and_cancel_work_as_for_text(rt: RuntimeClient) -> None:
    messages = [user(image_url(b64(picture(4))), TEXT)]
    full = run(rt, messages=messages, max_tokens=30)
    stop = full["text"][10:16]
    cut = run(rt, messages=messages, max_tokens=30, stop_sequences=[stop])
    assert cut["text"] == full["text"][: full["text"].index(stop)] and cut["event"]["finish_reason"] == "stop"
    assert run(rt, messages=messages, max_tokens=5)["stats"]["tokens_generated"] == 5
    stream_id = rt.request(
        "generate",
        {
            "model_id": VLM,
            "messages": messages,
            "max_tokens": 5000,
            "temperature": 0,
            "logit_bias": {"0": -100, "2": -100},
        },
    )["stream_id"]
    stream = rt.stream(stream_id)
    next(stream)
    rt.request("cancel", {"stream_id": stream_id})
    assert list(stream)[-1]["params"]["finish_reason"] == "cancelled"


def bad_cases(root: Path, base: str) -> list[tuple[Any, str]]:
    big = Image.fromarray((np.random.default_rng(0).random((400, 400, 3)) * 255).astype("uint8"))
    huge = Image.new("RGB", (1100, 1000), (10, 20, 30))  # few bytes as PNG, too many pixels
    return [
        ("!!!not base64!!!", "not valid base64"),
        (base64.b64encode(b"this is not an image at all").decode(), "not an image in a supported format"),
        (b64(picture(1), "TIFF"), "not an image in a supported format"),
        (base64.b64encode(encoded(picture(1))[:200]).decode(), "cannot be decoded"),
        ("data:image/png,rawbytes", "must be base64"),
        (b64(big), "larger than"),
        (b64(huge), "pixels"),
        (str(root / "two.jpg"), "outside the allowed directories"),
        (str(root / "allowed" / ".." / "two.jpg"), "outside the allowed directories"),
        (str(root / "allowed" / "missing.png"), "no such image file"),
        (f"{base}/two.jpg", "URL is not allowed"),
        ("https://example.com/cat.png", "URL is not allowed"),
        (f"{base}/allowed/missing.png", "could not be fetched"),
        (f"{base}/allowed/../two.jpg", "URL is not allowed"),
        ("http://127.0.0.1.evil.example/allowed/one.png", "URL is not allowed"),
    ]


def test_every_bad_image_is_refused_before_model_work_and_the_runtime_serves_on(
    rt: RuntimeClient, served: tuple[Path, str]
) -> None:
    root, base = served
    for source, reason in bad_cases(root, base):
        with pytest.raises(RpcFailure) as failure:
            rt.request("generate", {"model_id": VLM, "messages": [user(image_url(source), TEXT)], "stream_id": "bad"})
        error = failure.value
        assert error.code == -32602, (source[:40], error.message)
        assert error.data["errors"][0]["path"] == "/messages/0/content/0/image_url", error.data
        assert reason in error.data["errors"][0]["message"], (reason, error.data)
    with pytest.raises(RpcFailure) as too_many:
        run(rt, messages=[user(*[image_url(b64(picture(i))) for i in range(MAX_IMAGES + 1)], TEXT)])
    assert "limit is 3" in too_many.value.data["errors"][0]["message"]
    with pytest.raises(RpcFailure) as mismatch:
        run(rt, "generate_with_image", prompt="<image> <image> two?", image=b64(picture(1)))
    assert "2 <image> tokens for 1 images" in mismatch.value.data["errors"][0]["message"]
    assert not [m for m in rt.messages if isinstance(m, dict) and m.get("params", {}).get("stream_id") == "bad"]
    assert run(rt, messages=[user(image_url(b64(picture(1))), TEXT)])["event"]["event"] == "completed"


def test_text_and_vision_models_side_by_side_are_routed_correctly(rt: RuntimeClient) -> None:
    text_stream = rt.request(
        "generate", {"model_id": MODEL, "prompt": "Once upon a time", "max_tokens": 20, "temperature": 0}
    )
    vision_stream = rt.request(
        "generate",
        {"model_id": VLM, "messages": [user(image_url(b64(picture(2))), TEXT)], "max_tokens": 20, "temperature": 0},
    )
    text, seen = rt.collect(text_stream["stream_id"]), rt.collect(vision_stream["stream_id"])
    assert "images" not in text["stats"] and seen["stats"]["images"] == 1
    state = {m["model_id"]: m["type"] for m in rt.request("runtime/state")["loaded_models"]}
    assert state == {VLM: "vision", MODEL: "text"}
    with pytest.raises(RpcFailure) as refused:
        rt.request("generate", {"model_id": MODEL, "messages": [user(image_url(b64(picture(2))), TEXT)]})
    assert "not a vision model" in refused.value.data["errors"][0]["message"]
    with pytest.raises(RpcFailure) as not_vision:
        rt.request("load_vision_model", {"model_id": MODEL})
    assert not_vision.value.code == -32602
    plain = run(rt, messages=[{"role": "user", "content": "Tell me a story."}])
    assert "images" not in plain["stats"] and plain["event"]["event"] == "completed"


def test_paths_and_urls_are_refused_when_nothing_is_allowed(tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    picture(1).save(image)
    client = spawn_runtime()
    try:
        client.request("load_model", {"model_id": VLM})
        for source, reason in (
            (str(image), "file paths are not allowed"),
            ("http://127.0.0.1:9/cat.png", "URL is not allowed"),
        ):
            with pytest.raises(RpcFailure) as failure:
                client.request("generate", {"model_id": VLM, "messages": [user(image_url(source), TEXT)]})
            assert reason in failure.value.data["errors"][0]["message"]
        assert_schema_clean(client)
    finally:
        client.close()


def test_a_request_cancelled_while_its_image_is_fetched_never_starts(
    rt: RuntimeClient, served: tuple[Path, str]
) -> None:
    _, base = served
    params = {"model_id": VLM, "messages": [user(image_url(f"{base}/allowed/one.png?slow"), TEXT)], "stream_id": "late"}
    pending = rt.call_async("generate", params, request_id="slow-1")
    time.sleep(0.2)  # the preparer thread is fetching the image now
    rt.notify("$/cancelRequest", {"id": "slow-1"})
    response = pending.result(timeout=30)
    assert response["error"]["code"] == -32009, response
    assert not [m for m in rt.messages if isinstance(m, dict) and m.get("params", {}).get("stream_id") == "late"]


def stream_messages(client: RuntimeClient, stream_id: str) -> list[dict[str, Any]]:
    return [m for m in client.messages if isinstance(m, dict) and m.get("params", {}).get("stream_id") == stream_id]


def test_a_vision_prompt_over_max_prompt_tokens_is_refused_before_its_images_are_read() -> None:
    long_text = {"type": "text", "text": " ".join([QUESTION] * 40)}
    with runtime_with("--max-prompt-tokens", "96", models=(VLM,)) as client:
        for source in (b64(picture(1)), "!!!not base64!!!"):  # the length is checked before any decoding
            with pytest.raises(RpcFailure) as failure:
                client.request(
                    "generate", {"model_id": VLM, "messages": [user(image_url(source), long_text)], "stream_id": "long"}
                )
            assert failure.value.code == -32602
            [error] = failure.value.data["errors"]
            assert error["path"] == "/messages" and "the runtime's limit is 96" in error["message"], error
        assert not stream_messages(client, "long")
        served = run(client, messages=[user(image_url(b64(picture(1))), TEXT)], max_tokens=8)
        assert served["event"]["event"] == "completed" and served["stats"]["images"] == 1
        assert_schema_clean(client)
