"""Hub downloads against a fake hub on loopback: whole, cut and resumed, corrupted, cancelled, refused.

`download()` runs in-process (HF_ENDPOINT points at the fake hub, HF_HUB_CACHE into tmp_path); a
real runtime loads a hub id through it, and `runtime pull` runs as a subprocess. Every wait is bounded.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest

from runtime import faults
from runtime.cli.pull import ProgressBar, human_size
from runtime.engine import download as dl
from runtime.engine.download import DownloadProgress, cached_snapshot, download
from runtime.engine.resolve import EMBEDDED_DIR, resolve
from tests.conftest import REPO, TIMEOUT, assert_schema_clean, spawn_runtime
from tests.support.fakehub import FakeHub

REPO_ID = "tiny-org/tiny-chat"
WEIGHTS = "model.safetensors"
SOURCE = EMBEDDED_DIR / "tiny-chat"
WEIGHTS_SIZE = (SOURCE / WEIGHTS).stat().st_size
TOTAL = sum(p.stat().st_size for p in SOURCE.iterdir() if p.suffix in (".json", ".safetensors"))
DRAFT_ENTRY = {"source": {"embedded": "tiny-draft"}}
SLOW_BYTES_PER_S = 400_000.0  # the weights take ~18 s: plenty of time to stop them half-way


@pytest.fixture(autouse=True)
def online_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at its import: a test that imported it offline
    earlier in this process must not leave it offline here (a runtime's environment is fixed;
    download() reads the variable itself, so the offline tests still see it)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub({REPO_ID: SOURCE}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield fake


def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub"


def partial_of(tmp_path: Path) -> Path:
    blobs = cache(tmp_path) / "models--tiny-org--tiny-chat" / "blobs"
    found = list(blobs.glob("*.incomplete"))
    assert len(found) == 1, f"one partial file expected, found {found}"
    return found[0]


def partial_size(tmp_path: Path) -> int:
    blobs = cache(tmp_path) / "models--tiny-org--tiny-chat" / "blobs"
    return sum(p.stat().st_size for p in blobs.glob("*.incomplete")) if blobs.is_dir() else 0


def assert_same_files(snapshot: Path) -> None:
    for source in SOURCE.iterdir():
        assert (snapshot / source.name).read_bytes() == source.read_bytes(), source.name


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def weights_ranges(hub: FakeHub) -> list[str | None]:
    return [r.range for r in hub.gets(WEIGHTS)]


# --- in-process ----------------------------------------------------------------------------------
def test_a_full_download_gives_the_same_files_and_progress_that_climbs_to_the_total(
    hub: FakeHub, tmp_path: Path
) -> None:
    seen: list[DownloadProgress] = []
    snapshot = download(REPO_ID, on_progress=seen.append)
    assert_same_files(snapshot)
    assert snapshot.is_relative_to(cache(tmp_path)) and cached_snapshot(REPO_ID) == snapshot
    assert seen and all(p.bytes_total == TOTAL and p.repo_id == REPO_ID for p in seen)
    done = [p.bytes_done for p in seen]
    assert done == sorted(done) and done[-1] == TOTAL and seen[-1].eta_s == 0.0
    assert all(p.rate_bytes_per_s >= 0 for p in seen)


def test_a_second_download_of_a_cached_repo_fetches_no_file_again(hub: FakeHub) -> None:
    first = download(REPO_ID)
    gets_before = len([r for r in hub.requests if r.file])
    assert download(REPO_ID) == first
    assert len([r for r in hub.requests if r.file]) == gets_before


def test_a_transfer_cut_half_way_is_continued_with_a_range_request_in_the_same_call(hub: FakeHub) -> None:
    hub.cut(WEIGHTS, WEIGHTS_SIZE // 2)
    assert_same_files(download(REPO_ID))
    assert weights_ranges(hub) == [None, f"bytes={WEIGHTS_SIZE // 2}-"]
    assert hub.bytes_sent(WEIGHTS) == WEIGHTS_SIZE  # the first half was not fetched twice


def test_a_download_that_broke_off_is_resumed_by_the_next_call_without_refetching_the_first_part(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "RESUME_ATTEMPTS", 0)  # as if the process had died at the cut
    hub.cut(WEIGHTS, WEIGHTS_SIZE // 2)
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID)
    assert "resume" in caught.value.message and caught.value.details["file"] == WEIGHTS
    assert partial_of(tmp_path).stat().st_size == WEIGHTS_SIZE // 2 and cached_snapshot(REPO_ID) is None
    seen: list[DownloadProgress] = []
    assert_same_files(download(REPO_ID, on_progress=seen.append))
    assert weights_ranges(hub) == [None, f"bytes={WEIGHTS_SIZE // 2}-"]
    assert hub.bytes_sent(WEIGHTS) == WEIGHTS_SIZE
    assert seen[0].bytes_done >= WEIGHTS_SIZE // 2  # the resumed bytes count from the first report


def test_a_corrupted_file_fails_naming_it_is_deleted_and_a_later_good_download_succeeds(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.corrupt.add(WEIGHTS)
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID)
    assert caught.value.details["reason"] == "checksum" and caught.value.details["file"] == WEIGHTS
    assert WEIGHTS in caught.value.message
    blobs = cache(tmp_path) / "models--tiny-org--tiny-chat" / "blobs"
    assert not [p for p in blobs.iterdir() if p.stat().st_size >= WEIGHTS_SIZE]  # the bad bytes are gone
    assert cached_snapshot(REPO_ID) is None
    hub.corrupt.clear()
    assert_same_files(download(REPO_ID))
    assert weights_ranges(hub) == [None, None]  # fetched afresh, not resumed from the bad bytes


def test_a_repo_the_hub_does_not_have_is_reported_as_not_found(hub: FakeHub) -> None:
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download("tiny-org/no-such-model")
    assert "not found" in caught.value.message and caught.value.details["reason"] == "not_found"


def test_a_revision_the_hub_does_not_have_is_reported_as_not_found(hub: FakeHub) -> None:
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID, "no-such-branch")
    assert "not found" in caught.value.message and caught.value.details["reason"] == "not_found"


def test_offline_mode_says_so_and_names_the_cache_directory(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID)
    assert caught.value.details["reason"] == "offline" and "HF_HUB_OFFLINE" in caught.value.message
    assert str(cache(tmp_path)) in caught.value.message and hub.requests == []


def test_an_unreachable_hub_is_reported_as_offline_naming_the_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache(tmp_path)))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID)
    assert caught.value.details["reason"] == "offline" and "cannot be reached" in caught.value.message
    assert str(cache(tmp_path)) in caught.value.message


def test_a_cancel_stops_a_slow_download_promptly_and_a_later_call_resumes_it(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle_bytes_per_s = SLOW_BYTES_PER_S
    cancel, outcome = threading.Event(), {}
    seen: list[DownloadProgress] = []

    def run() -> None:
        try:
            download(REPO_ID, on_progress=seen.append, cancel=cancel)
        except faults.Cancelled as exc:
            outcome["cancelled"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    wait_until(lambda: bool(seen) and seen[-1].bytes_done > 1_000_000, 30, "a megabyte downloaded")
    cancel.set()
    stopped = time.monotonic()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - stopped < 2.0 and "cancelled" in outcome
    assert "resume" in outcome["cancelled"].message
    kept = partial_of(tmp_path).stat().st_size
    assert 1_000_000 < kept < WEIGHTS_SIZE
    hub.throttle_bytes_per_s = None
    assert_same_files(download(REPO_ID))
    assert f"bytes={kept}-" in weights_ranges(hub)


def test_not_enough_disk_space_is_refused_before_any_transfer_with_the_numbers(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "free_bytes", lambda path: 1000)
    with pytest.raises(faults.ModelLoadFailed) as caught:
        download(REPO_ID)
    details = caught.value.details
    assert details["reason"] == "disk_space" and details["needed_bytes"] == TOTAL and details["free_bytes"] == 1000
    assert details["cache_dir"] == str(cache(tmp_path)) and str(TOTAL) in caught.value.message
    assert [r for r in hub.requests if r.file] == []


@pytest.mark.parametrize(
    "repo_id",
    ["org/../etc", "org/..", "/etc/passwd", "org\\name", "org/name/extra", "org/na me", "org/--x", "a/b;c", ""],
)
def test_hub_ids_with_path_tricks_are_refused_before_any_network(hub: FakeHub, repo_id: str) -> None:
    with pytest.raises(faults.InvalidInput) as caught:
        download(repo_id)
    assert caught.value.errors[0]["path"] == "/model_id" and hub.requests == []


def test_a_revision_with_path_tricks_is_refused_before_any_network(hub: FakeHub) -> None:
    with pytest.raises(faults.InvalidInput) as caught:
        download(REPO_ID, "../../refs")
    assert caught.value.errors[0]["path"] == "/revision" and hub.requests == []


def test_resolve_refuses_a_hub_id_with_path_tricks_and_downloads_a_good_one(hub: FakeHub) -> None:
    with pytest.raises(faults.InvalidInput):
        resolve("org/../../etc")
    seen: list[DownloadProgress] = []
    resolved = resolve(REPO_ID, on_progress=seen.append)
    assert resolved.source == "hub" and seen[-1].bytes_done == TOTAL
    assert_same_files(resolved.path)


# --- a real runtime ------------------------------------------------------------------------------
def test_a_runtime_loads_a_hub_id_from_the_hub_with_downloading_progress_and_generates(
    hub: FakeHub, tmp_path: Path
) -> None:
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache(tmp_path)), "HF_HUB_OFFLINE": ""}
    client = spawn_runtime(env=env)
    try:
        info = client.request("load_model", {"model_id": REPO_ID}, timeout=TIMEOUT)
        assert info["source"] == "hub" and info["state"] == "ready"
        progress = [m["params"] for m in list(client.messages) if m.get("method") == "model.progress"]
        downloading = [p for p in progress if p["stage"] == "downloading"]
        assert downloading and downloading[-1]["bytes_done"] == downloading[-1]["bytes_total"] == TOTAL
        assert downloading[-1]["progress"] == 1.0 and progress[-1]["stage"] == "ready"
        stream = client.request("generate", {"model_id": REPO_ID, "prompt": "Once", "max_tokens": 8})
        assert client.collect(stream["stream_id"], timeout=TIMEOUT)["tokens"]
        assert_schema_clean(client)
    finally:
        client.close()


def test_cancelling_a_load_request_stops_its_download_and_the_next_load_resumes_it(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.throttle_bytes_per_s = SLOW_BYTES_PER_S
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache(tmp_path)), "HF_HUB_OFFLINE": ""}
    client = spawn_runtime(env=env)
    try:
        load = client.call_async("load_model", {"model_id": REPO_ID}, request_id="pull-1")
        wait_until(lambda: partial_size(tmp_path) > 1_000_000, 30, "a megabyte downloaded")
        client.notify("$/cancelRequest", {"id": "pull-1"})
        answer = load.result(10)
        assert answer["error"]["code"] == -32009, answer
        kept = partial_of(tmp_path).stat().st_size
        assert kept < WEIGHTS_SIZE and client.request("runtime/state")["loaded_models"] == []
        hub.throttle_bytes_per_s = None
        assert client.request("load_model", {"model_id": REPO_ID}, timeout=TIMEOUT)["state"] == "ready"
        resumed = [r for r in weights_ranges(hub) if r is not None]
        assert resumed and int(resumed[-1].removeprefix("bytes=").split("-")[0]) >= kept
        assert_schema_clean(client)
    finally:
        client.close()


def test_a_registered_hub_model_downloads_on_demand_and_models_list_shows_it_on_disk(
    hub: FakeHub, tmp_path: Path
) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"models": {"chat": {"source": {"hub": REPO_ID}, "aliases": ["c"]}}}))
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache(tmp_path)), "HF_HUB_OFFLINE": ""}
    client = spawn_runtime("--models", str(models), env=env)
    try:
        before = {m["model_id"]: m for m in client.request("models/list")["models"]}
        assert before["chat"]["state"] == "available" and before["chat"]["disk_bytes"] is None
        assert before["chat"]["source"] == {"kind": "hub", "name": REPO_ID}
        stream = client.request("generate", {"model_id": "c", "prompt": "Once", "max_tokens": 4}, timeout=TIMEOUT)
        assert client.collect(stream["stream_id"], timeout=TIMEOUT)["tokens"]
        stages = [m["params"]["stage"] for m in list(client.messages) if m.get("method") == "model.progress"]
        assert "downloading" in stages and stages[-1] == "ready"
        after = {m["model_id"]: m for m in client.request("models/list")["models"]}
        assert after["chat"]["state"] == "ready" and after["chat"]["disk_bytes"] >= TOTAL
        assert_schema_clean(client)
    finally:
        client.close()


def test_a_request_cancelled_while_its_registered_model_downloads_ends_at_once_and_a_retry_resumes(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.throttle_bytes_per_s = SLOW_BYTES_PER_S
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"models": {"chat": {"source": {"hub": REPO_ID}}}}))
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache(tmp_path)), "HF_HUB_OFFLINE": ""}
    client = spawn_runtime("--models", str(models), env=env)
    try:
        call = client.call_async("generate", {"model_id": "chat", "prompt": "Once", "max_tokens": 3}, request_id="g-1")
        wait_until(lambda: partial_size(tmp_path) > 500_000, 30, "half a megabyte downloaded")
        client.notify("$/cancelRequest", {"id": "g-1"})
        assert call.result(3)["error"]["code"] == -32009
        hub.throttle_bytes_per_s = None
        retry = client.request("generate", {"model_id": "chat", "prompt": "Once", "max_tokens": 3}, timeout=TIMEOUT)
        assert client.collect(retry["stream_id"], timeout=TIMEOUT)["tokens"]
        assert any(r is not None for r in weights_ranges(hub))  # the retry continued the partial file
        assert_schema_clean(client)
    finally:
        client.close()


# --- runtime pull --------------------------------------------------------------------------------
def pull_command(hub: FakeHub, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update({"PYTHONPATH": str(REPO), "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache(tmp_path))})
    return [sys.executable, "-m", "runtime", "pull", REPO_ID], env


def pull(hub: FakeHub, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command, env = pull_command(hub, tmp_path)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_runtime_pull_downloads_into_the_cache_with_progress_lines(hub: FakeHub, tmp_path: Path) -> None:
    done = pull(hub, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_files(Path(done.stdout.strip()))
    assert "100.0%" in done.stderr and "ETA" in done.stderr and "MB" in done.stderr and "\r" not in done.stderr


def test_runtime_pull_of_a_registry_id_downloads_its_hub_repo_and_runtime_models_shows_it(
    hub: FakeHub, tmp_path: Path
) -> None:
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"models": {"chat": {"source": {"hub": REPO_ID}}, "local": DRAFT_ENTRY}}))
    command, env = pull_command(hub, tmp_path)
    env["RUNTIME_MODELS"] = str(models)
    done = subprocess.run([*command[:-1], "chat"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert_same_files(Path(done.stdout.strip()))
    local = subprocess.run([*command[:-1], "local"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert local.returncode == 2 and "nothing to pull" in local.stderr
    listing = subprocess.run([*command[:-2], "models"], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    row = next(line for line in listing.stdout.splitlines() if line.strip().startswith("chat"))
    assert "downloaded" in row and "MB" in row and REPO_ID in listing.stdout


def test_a_second_runtime_pull_after_a_cut_resumes_where_the_first_stopped(hub: FakeHub, tmp_path: Path) -> None:
    hub.cut(WEIGHTS, 500_000, times=dl.RESUME_ATTEMPTS + 1)  # every retry of the first pull is cut too
    first = pull(hub, tmp_path)
    assert first.returncode == 1 and "resume" in first.stderr
    kept = partial_of(tmp_path).stat().st_size
    assert kept == 500_000 * (dl.RESUME_ATTEMPTS + 1)
    second = pull(hub, tmp_path)
    assert second.returncode == 0, second.stderr
    assert_same_files(Path(second.stdout.strip()))
    assert weights_ranges(hub)[-1] == f"bytes={kept}-" and hub.bytes_sent(WEIGHTS) == WEIGHTS_SIZE


def test_ctrl_c_stops_runtime_pull_with_130_and_the_next_pull_resumes(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle_bytes_per_s = SLOW_BYTES_PER_S
    command, env = pull_command(hub, tmp_path)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: partial_size(tmp_path) > 1_000_000, 30, "a megabyte on disk")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130 and "resume" in stderr
    kept = partial_of(tmp_path).stat().st_size
    assert 0 < kept < WEIGHTS_SIZE
    hub.throttle_bytes_per_s = None
    second = pull(hub, tmp_path)
    assert second.returncode == 0, second.stderr
    assert_same_files(Path(second.stdout.strip()))
    assert f"bytes={kept}-" in weights_ranges(hub)


def test_a_repo_without_mlx_files_is_refused_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "gguf-only"
    other.mkdir()
    (other / "model.gguf").write_bytes(b"GGUF")
    with FakeHub({"org/gguf-only": other}) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache(tmp_path)))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        with pytest.raises(faults.ModelLoadFailed) as caught:
            download("org/gguf-only")
    assert caught.value.details["reason"] == "no_files" and "*.safetensors" in caught.value.message


def test_the_pull_progress_bar_redraws_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar(out)
    for done in (0, 3_000_000, TOTAL):
        bar(DownloadProgress(REPO_ID, "main", WEIGHTS, done, TOTAL, 2_000_000.0, (TOTAL - done) / 2_000_000))
    bar.end()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    size = human_size(TOTAL)
    assert f"{size} / {size}  100.0%  2.0 MB/s  ETA 0:00" in text and "\x1b[K" in text
