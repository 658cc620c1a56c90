"""Shared fixtures. E2E tests spawn the real runtime over real pipes with real MLX; every wait is
bounded, and every message a runtime wrote is checked against schemas/ when its test ends."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime.server.blas import preload_blas

preload_blas()  # before any test imports mlx, so in-process references run as fast as the runtime

from tests.support.harness import RuntimeClient  # noqa: E402
from tests.support.schema_check import problems_in  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "tiny-chat"
TIMEOUT = 60.0


def run_runtime(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m runtime ARGS` run to its end (stdin empty): its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def spawn_runtime(*args: str, env: dict[str, str] | None = None) -> RuntimeClient:
    base_env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return RuntimeClient.spawn(list(args), env={**base_env, **(env or {})}, ready_timeout=TIMEOUT)


@contextmanager
def runtime_with(
    *args: str, models: tuple[str, ...] = (MODEL,), env: dict[str, str] | None = None
) -> Iterator[RuntimeClient]:
    """A runtime started with `args` (and `env`) and `models` loaded, closed afterwards."""
    client = spawn_runtime(*args, env=env)
    try:
        for model in models:
            client.request("load_model", {"model_id": model}, timeout=TIMEOUT)
        yield client
    finally:
        client.close()


def assert_schema_clean(client: RuntimeClient) -> None:
    problems = problems_in(list(client.messages), dict(client.sent_methods))
    assert not problems, "messages that break schemas/:\n" + "\n".join(problems[:20])


@pytest.fixture
def fresh_runtime() -> Iterator[RuntimeClient]:
    """A runtime of the test's own, with no model loaded."""
    client = spawn_runtime()
    try:
        yield client
        assert_schema_clean(client)
    finally:
        client.close()


@pytest.fixture(scope="module")
def shared_runtime() -> Iterator[RuntimeClient]:
    """One runtime per test module with the embedded model loaded."""
    with runtime_with() as client:
        yield client


@pytest.fixture
def runtime(shared_runtime: RuntimeClient) -> Iterator[RuntimeClient]:
    yield from checked(shared_runtime)


def checked(client: RuntimeClient) -> Iterator[RuntimeClient]:
    """For a per-test fixture over a shared runtime: after the test, every message was
    schema-clean and the runtime is still alive."""
    yield client
    assert_schema_clean(client)
    assert client.process.poll() is None, "the runtime died during the test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Unit tests first, end-to-end after (cheap failures surface first).
    items.sort(key=lambda item: "e2e" in str(item.fspath))
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(REPO))
