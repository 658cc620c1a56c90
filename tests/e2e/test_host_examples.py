"""The host examples in docs/ run as written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_the_python_host_example_streams_and_stops_early() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "examples" / "python_host.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "finish: " in result.stdout and "[stopped early: cancelled]" in result.stdout


def test_the_node_host_example_streams_and_aborts() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    dist = REPO / "bindings" / "node" / "dist"
    assert dist.is_dir(), "bindings/node is not built: run scripts/setup.sh"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "MLX_RPC_RUNTIME_COMMAND": str(REPO / ".venv" / "bin" / "runtime"),
    }
    result = subprocess.run(
        [node, str(REPO / "docs" / "examples" / "node_host.mjs")], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "finish: " in result.stdout and "[stopped early: cancelled]" in result.stdout
