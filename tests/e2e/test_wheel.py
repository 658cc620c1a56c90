"""The wheel carries schemas/ and the embedded model: installed in a fresh venv, it serves from there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_schema_clean
from tests.support.harness import RuntimeClient


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("mlx_rpc_runtime-*.whl"))


def test_the_wheel_contains_the_schemas_and_the_embedded_model(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in (REPO / "schemas").rglob("*.json"):
        assert f"runtime/schemas/{schema.relative_to(REPO / 'schemas')}" in names
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert f"runtime/assets/models/tiny-chat/{name}" in names


def test_the_installed_wheel_serves_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # Dependencies (mlx, mlx-lm, ...) come from this environment; the project itself only from the wheel.
    site = Path(
        subprocess.check_output(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    location = subprocess.check_output(
        [str(venv / "bin" / "python"), "-c", "import runtime; print(runtime.__file__)"],
        text=True,
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin"},
    ).strip()
    assert location.startswith(str(site))
    client = RuntimeClient.spawn(
        command=[str(venv / "bin" / "runtime")],
        cwd=str(elsewhere),
        env={"PYTHONPATH": "", "HF_HUB_OFFLINE": "1"},
        ready_timeout=60,
    )
    try:
        client.request("load_model", {"model_id": "tiny-chat"})
        out = client.collect(
            client.request(
                "generate", {"model_id": "tiny-chat", "prompt": "Once upon a time", "max_tokens": 10, "temperature": 0}
            )["stream_id"]
        )
        assert out["stats"]["tokens_generated"] > 0
        bad = client.call_async("generate", {"model_id": "tiny-chat", "max_tokens": "x"}).result(30)
        assert bad["error"]["code"] == -32602  # params validated: the packaged schemas were found
        assert_schema_clean(client)
    finally:
        client.close()
