"""The HTTP front door end to end: `runtime serve` on a free loopback port, driven by the official
`openai` and `anthropic` Python SDKs (streaming and not, tools, structured output, embeddings,
count_tokens, errors), SSE framing checked byte by byte, a disconnect that stops the engine,
8 concurrent streaming clients batched, readiness that flips after the default model loads, an API
key, body limits and a full queue. Every wait is bounded."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest

from runtime.faultinject import STREAM_FAULT_MARKER
from tests.conftest import REPO

SERVING = "MLX Runtime serving HTTP on "
START_S = 60.0
NO_EOS = {"0": -100, "2": -100}  # tiny-chat's end tokens: a stream runs to max_tokens
MODELS = {
    "models": {
        "tiny-chat": {"source": {"embedded": "tiny-chat"}},
        "tiny-embed": {"source": {"embedded": "tiny-embed"}},
        "tiny-rerank": {"source": {"embedded": "tiny-rerank"}},
    },
    "default_model": "tiny-chat",
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER}}]


class Server:
    """`runtime serve` in a child process; `bound` is the URL it prints once it listens, `url` the
    one to reach it by (loopback for a wildcard address). `models=None`: no models file at all."""

    def __init__(
        self, tmp: Path, *args: str, env: dict[str, str] | None = None, models: dict[str, Any] | None = MODELS
    ) -> None:
        command = [sys.executable, "-m", "runtime", "serve", "--port", "0", *args]
        environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
        if models is not None:
            (tmp / "models.json").write_text(json.dumps(models))
            command += ["--models", str(tmp / "models.json")]
        else:  # nothing may name a registry behind the test's back
            environment = {k: v for k, v in environment.items() if k not in ("RUNTIME_MODELS", "RUNTIME_CONFIG")}
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=environment)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.bound = self._wait_for_url()
        self.url = self.bound.replace("//0.0.0.0:", "//127.0.0.1:")

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.put(raw.decode(errors="replace"))

    def _wait_for_url(self) -> str:
        deadline, seen = time.monotonic() + START_S, []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if SERVING in line:
                return line.split(SERVING, 1)[1].strip()
            seen.append(line)
        self.close()
        raise TimeoutError(f"runtime serve did not start listening: {''.join(seen[-5:])}")

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def wait_ready(server: Server, timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.05)
    raise TimeoutError("/ready never answered 200")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("http"))
    try:
        wait_ready(running)
        yield running
    finally:
        running.close()


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=60, max_retries=0)


@pytest.fixture
def claude(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", timeout=60, max_retries=0)


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (not wanted or wanted in line) and not line.startswith("#"):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


# --- OpenAI --------------------------------------------------------------------------------------
def test_an_openai_chat_completion_streams_the_same_text_it_answers_whole(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Tell me a story about a fox."}]
    whole = oai.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=40, temperature=0)
    assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant"
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    chunks = list(
        oai.chat.completions.create(
            model="tiny-chat",
            messages=messages,
            max_tokens=40,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_openai_tool_calls_come_back_parsed_streamed_and_whole(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    whole = oai.chat.completions.create(
        model="tiny-chat", messages=messages, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0
    )
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    streamed: dict[int, str] = {}
    for chunk in oai.chat.completions.create(
        model="tiny-chat",
        messages=messages,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=80,
        temperature=0,
        stream=True,
    ):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            streamed[delta.index] = streamed.get(delta.index, "") + (delta.function.arguments or "")
    assert json.loads(streamed[0]) == json.loads(call.function.arguments)


def test_strict_json_schema_output_validates(oai: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 99},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = oai.chat.completions.create(
        model="tiny-chat",
        messages=[{"role": "user", "content": "Give me a JSON object for a dog named Max."}],
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "schema": schema, "strict": True}},
        max_tokens=60,
        temperature=0.7,
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


def test_openai_logprobs_completions_and_models(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="tiny-chat",
        messages=[{"role": "user", "content": "Hello!"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    entries = reply.choices[0].logprobs.content
    assert entries and all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in entries)
    completion = oai.completions.create(model="tiny-chat", prompt="Once upon a time", max_tokens=8, temperature=0)
    assert completion.object == "text_completion" and completion.choices[0].text
    assert "tiny-chat" in [m.id for m in oai.models.list().data]


def test_openai_embeddings_and_rerank(oai: openai.OpenAI, server: Server) -> None:
    result = oai.embeddings.create(model="tiny-embed", input=["The cat sat on the mat.", "Rates rose."])
    assert len(result.data) == 2 and result.usage.prompt_tokens > 0
    assert abs(sum(x * x for x in result.data[0].embedding) - 1) < 1e-4
    ranked = httpx.post(
        f"{server.url}/v1/rerank",
        json={"model": "tiny-rerank", "query": "baking bread", "documents": ["Knead the dough.", "Rates rose."]},
        timeout=30,
    ).json()
    assert [r["index"] for r in ranked["results"]][0] == 0


def test_float_embeddings_are_json_numbers_equal_to_the_base64_ones(oai: openai.OpenAI, server: Server) -> None:
    texts = ["A lighthouse stands on the rocky shore.", "Interest rates rose again this year."]
    reference = [d.embedding for d in oai.embeddings.create(model="tiny-embed", input=texts).data]  # base64
    plain = httpx.post(f"{server.url}/v1/embeddings", json={"model": "tiny-embed", "input": texts}, timeout=30)
    assert plain.status_code == 200, plain.text
    untyped = [d["embedding"] for d in plain.json()["data"]]
    assert all(isinstance(x, float) for vector in untyped for x in vector)
    floats = oai.embeddings.create(model="tiny-embed", input=texts, encoding_format="float")
    for vectors in (untyped, [d.embedding for d in floats.data]):
        assert len(vectors) == len(reference)
        for vector, expected in zip(vectors, reference, strict=True):
            assert (
                len(vector) == len(expected) and max(abs(a - b) for a, b in zip(vector, expected, strict=True)) < 1e-6
            )


def test_a_repeated_embeddings_request_reports_its_cache_hits_in_usage(server: Server) -> None:
    body = {"model": "tiny-embed", "input": ["Cache test: the violin was out of tune.", "Cache test: snow fell."]}
    first = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=30).json()
    again = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=30).json()
    assert first["usage"]["cached_inputs"] == first["usage"]["cached_tokens"] == 0
    assert again["usage"]["cached_inputs"] == 2
    assert again["usage"]["cached_tokens"] == again["usage"]["prompt_tokens"] == first["usage"]["prompt_tokens"] > 0
    assert [d["embedding"] for d in again["data"]] == [d["embedding"] for d in first["data"]]


def test_openai_errors_are_in_openai_shape_with_the_field(oai: openai.OpenAI, server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "x"}], temperature="hot")  # type: ignore[arg-type]
    assert "temperature" in str(bad.value)
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "x"}], n=2)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raw = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", timeout=10)
    assert raw.status_code == 400 and "error" in raw.json()


# --- Anthropic -----------------------------------------------------------------------------------
def test_an_anthropic_message_streams_the_same_text_it_answers_whole(claude: anthropic.Anthropic) -> None:
    params: dict[str, Any] = {
        "model": "tiny-chat",
        "max_tokens": 40,
        "extra_body": {"temperature": 0},  # this SDK no longer takes temperature; the API still does
        "system": "You tell stories.",
        "messages": [{"role": "user", "content": "Tell me a story about a cat."}],
    }
    whole = claude.messages.create(**params)
    assert whole.type == "message" and whole.content[0].type == "text"
    assert whole.stop_reason in ("end_turn", "max_tokens") and whole.usage.input_tokens > 0
    with claude.messages.stream(**params) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text and final.usage.output_tokens == whole.usage.output_tokens
    counted = claude.messages.count_tokens(model="tiny-chat", system=params["system"], messages=params["messages"])
    # input_tokens counts what was not read from the prompt cache (Anthropic's meaning)
    whole_input = whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == whole_input


def test_anthropic_tool_use_comes_back_as_a_tool_use_block(claude: anthropic.Anthropic) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    greedy = {"temperature": 0}
    whole = claude.messages.create(
        model="tiny-chat", max_tokens=80, extra_body=greedy, tools=tools, tool_choice={"type": "any"}, messages=messages
    )
    block = next(b for b in whole.content if b.type == "tool_use")
    assert whole.stop_reason == "tool_use" and block.name == "get_weather"
    jsonschema.validate(block.input, WEATHER)
    with claude.messages.stream(
        model="tiny-chat", max_tokens=80, extra_body=greedy, tools=tools, tool_choice={"type": "any"}, messages=messages
    ) as stream:
        final = stream.get_final_message()
    assert next(b for b in final.content if b.type == "tool_use").input == block.input


def test_an_anthropic_stop_sequence_is_reported_by_name(claude: anthropic.Anthropic) -> None:
    story = [{"role": "user", "content": "Tell me a story about a fox."}]
    greedy = {"temperature": 0, "logit_bias": NO_EOS}
    text = claude.messages.create(model="tiny-chat", max_tokens=30, messages=story, extra_body=greedy).content[0].text
    stop = text.split()[3]
    cut = claude.messages.create(
        model="tiny-chat", max_tokens=30, messages=story, stop_sequences=[stop], extra_body=greedy
    )
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop
    assert stop not in (cut.content[0].text if cut.content else "")


def test_anthropic_errors_are_in_anthropic_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="tiny-chat", max_tokens=-5, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["type"] == "error" and bad.value.body["error"]["type"] == "invalid_request_error"


# --- SSE framing, byte by byte -------------------------------------------------------------------
def sse_bytes(server: Server, path: str, body: dict[str, Any]) -> bytes:
    with httpx.stream("POST", f"{server.url}{path}", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return b"".join(response.iter_raw())


def test_openai_sse_is_data_lines_ending_in_done(server: Server) -> None:
    raw = sse_bytes(
        server,
        "/v1/chat/completions",
        {"model": "tiny-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "stream": True},
    )
    assert raw.endswith(b"data: [DONE]\n\n")
    frames = raw.split(b"\n\n")[:-1]
    assert all(frame.startswith(b"data: ") and b"\n" not in frame for frame in frames)
    payloads = [json.loads(frame[6:]) for frame in frames[:-1]]
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(p["object"] == "chat.completion.chunk" and p["id"] == payloads[0]["id"] for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_anthropic_sse_follows_the_event_sequence(server: Server) -> None:
    raw = sse_bytes(
        server,
        "/v1/messages",
        {"model": "tiny-chat", "max_tokens": 6, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    )
    frames = raw.split(b"\n\n")[:-1]
    names = []
    for frame in frames:
        event, data = frame.split(b"\n")
        assert event.startswith(b"event: ") and data.startswith(b"data: ")
        name = event[7:].decode()
        assert json.loads(data[6:])["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


# --- the engine behind the door ------------------------------------------------------------------
def assert_cancelled_in_the_engine(server: Server, before: float, failure: str) -> None:
    """Within 10 s one more request ends cancelled and none is left running."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = server.metrics()
        if metric(text, "mlx_runtime_requests_finished_total", finished_reason="cancelled") > before:
            break
        time.sleep(0.05)
    else:
        pytest.fail(failure)
    assert metric(text, "mlx_runtime_requests_running") == 0


def test_a_client_that_disconnects_mid_stream_stops_its_stream_in_the_engine(server: Server) -> None:
    before = metric(server.metrics(), "mlx_runtime_requests_finished_total", finished_reason="cancelled")
    body = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 3000,
        "logit_bias": NO_EOS,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as response:
        for count, _ in enumerate(response.iter_lines()):
            if count > 10:
                break  # leaving the block closes the connection
    assert_cancelled_in_the_engine(server, before, "the stream was not cancelled after the client left")


def test_a_client_that_leaves_before_a_whole_answer_stops_its_generation_in_the_engine(server: Server) -> None:
    before = metric(server.metrics(), "mlx_runtime_requests_finished_total", finished_reason="cancelled")
    body = {"model": "tiny-chat", "prompt": "Once upon a time", "max_tokens": 20000, "logit_bias": NO_EOS}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(f"{server.url}/v1/completions", json=body, timeout=1.0)
    assert_cancelled_in_the_engine(server, before, "the whole generate went on after the client left")


def test_eight_concurrent_streaming_clients_are_decoded_in_one_batch(server: Server) -> None:
    seen_batched: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen_batched.append(metric(server.metrics(), "mlx_runtime_requests_batched"))
            time.sleep(0.05)

    def one_client(index: int) -> str:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=120, max_retries=0)
        stream = client.chat.completions.create(
            model="tiny-chat",
            messages=[{"role": "user", "content": f"Story number {index}."}],
            max_tokens=120,
            logit_bias=NO_EOS,
            temperature=0,
            stream=True,
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(one_client, range(8)))
    done.set()
    watcher.join(10)
    assert all(texts)
    assert max(seen_batched) >= 4  # several streams on the model's batch at once


def test_health_is_open_and_metrics_are_prometheus_text(server: Server) -> None:
    assert httpx.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}
    response = httpx.get(f"{server.url}/metrics", timeout=5)
    assert response.headers["content-type"].startswith("text/plain")
    assert "mlx_runtime_requests_finished_total" in response.text


def test_ready_answers_503_until_the_default_model_is_loaded(tmp_path: Path) -> None:
    server = Server(tmp_path, env={"RUNTIME_INJECT_FAULTS": "slow_load"})
    try:
        first = httpx.get(f"{server.url}/ready", timeout=5)
        assert first.status_code == 503 and first.json()["status"] == "loading"
        wait_ready(server)
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    finally:
        server.close()


def test_a_key_is_required_when_given_and_limits_answer_413_and_429(tmp_path: Path) -> None:
    server = Server(
        tmp_path, "--api-key", "s3cret", "--max-line-bytes", "20000", "--max-active-streams", "1", "--max-queued", "1"
    )
    try:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        denied = httpx.post(f"{server.url}/v1/messages", json={}, timeout=5)
        assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
        headers = {"Authorization": "Bearer s3cret"}
        wait_ready(server)  # readiness, like health, is open to probes without the key
        embed = {"model": "tiny-embed", "input": "Rates rose."}
        loaded = httpx.post(f"{server.url}/v1/embeddings", json=embed, headers=headers, timeout=30)
        assert loaded.status_code == 200  # tiny-embed is loaded now: the refusal below needs no load
        big = {"model": "tiny-chat", "messages": [{"role": "user", "content": "x" * 30000}]}
        too_big = httpx.post(f"{server.url}/v1/chat/completions", json=big, headers=headers, timeout=10)
        assert too_big.status_code == 413
        long_body = {
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": "story"}],
            "max_tokens": 2000,
            "logit_bias": NO_EOS,
            "stream": True,
        }
        url = f"{server.url}/v1/chat/completions"
        with (
            httpx.stream("POST", url, json=long_body, headers=headers, timeout=60) as first,
            httpx.stream("POST", url, json=long_body, headers=headers, timeout=60) as second,
        ):
            assert first.status_code == second.status_code == 200  # one decoding, one queued: full
            busy = httpx.post(
                url,
                json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                headers={"x-api-key": "s3cret"},
                timeout=10,
            )
            uncached = {**embed, "input": "Knead the dough."}  # one the cache holds never reaches the queue
            embed_busy = httpx.post(f"{server.url}/v1/embeddings", json=uncached, headers=headers, timeout=10)
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) >= 1
        assert embed_busy.status_code == 429 and int(embed_busy.headers["retry-after"]) >= 1
        assert embed_busy.json()["error"]["type"] == "rate_limit_error"
    finally:
        server.close()


def test_binding_beyond_loopback_needs_a_key_or_allow_remote() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2 and b"--api-key" in result.stderr


def test_an_open_breaker_answers_503_with_retry_after(tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        "--breaker-threshold",
        "2",
        "--breaker-cooldown-ms",
        "60000",
        env={"RUNTIME_INJECT_FAULTS": "stream_fault"},
    )
    try:
        wait_ready(server)
        prompt = f"Hello {STREAM_FAULT_MARKER}"  # the sampler raises at step 3: an engine fault
        faulty = {"model": "tiny-chat", "prompt": prompt, "max_tokens": 20, "logit_bias": NO_EOS}
        for _ in range(2):  # two engine faults open the breaker
            failed = httpx.post(f"{server.url}/v1/completions", json=faulty, timeout=30)
            assert failed.status_code == 500 and "injected: stream_fault" in failed.json()["error"]["message"]
        chat = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        refused = httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        anthropic_refused = httpx.post(f"{server.url}/v1/messages", json=chat, timeout=10)
        assert anthropic_refused.status_code == 503 and anthropic_refused.json()["type"] == "error"
        assert 1 <= int(anthropic_refused.headers["retry-after"]) <= 60
    finally:
        server.close()


def test_a_server_bound_beyond_loopback_serves_with_its_key_or_allow_remote(tmp_path: Path) -> None:
    keyed = Server(tmp_path, "--host", "0.0.0.0", "--api-key", "K")
    try:
        assert keyed.bound.startswith("http://0.0.0.0:")  # bound to every address, reached by loopback
        assert httpx.get(f"{keyed.url}/v1/models", timeout=10).status_code == 401
        wrong = httpx.get(f"{keyed.url}/v1/models", headers={"Authorization": "Bearer k"}, timeout=10)
        assert wrong.status_code == 401
        allowed = httpx.get(f"{keyed.url}/v1/models", headers={"Authorization": "Bearer K"}, timeout=10)
        assert allowed.status_code == 200 and allowed.json()["object"] == "list"
    finally:
        keyed.close()
    remote = Server(tmp_path, "--host", "0.0.0.0", "--allow-remote")
    try:
        assert remote.bound.startswith("http://0.0.0.0:")
        assert httpx.get(f"{remote.url}/v1/models", timeout=10).status_code == 200  # no key asked
    finally:
        remote.close()


def test_serve_with_no_models_file_serves_tiny_chat(tmp_path: Path) -> None:
    server = Server(tmp_path, models=None)
    try:
        wait_ready(server)
        assert httpx.get(f"{server.url}/ready", timeout=5).json()["model"] == "tiny-chat"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=60, max_retries=0)
        assert "tiny-chat" in [m.id for m in client.models.list().data]
        reply = client.completions.create(model="tiny-chat", prompt="Once upon a time", max_tokens=8, temperature=0)
        assert reply.choices[0].text and reply.usage is not None and reply.usage.completion_tokens > 0
    finally:
        server.close()
