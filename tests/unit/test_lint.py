"""The code base stays ruff clean (the project's style gate runs with the tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing_to_complain_about() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "runtime", "tests"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_starting_the_runtime_imports_no_heavy_library() -> None:
    """mlx-lm, transformers, llguidance, mlx-vlm, Pillow and numpy load when first used, so the
    runtime is ready in a fraction of a second and a host pays only for what it asks for."""
    import subprocess
    import sys

    heavy = ("mlx_lm", "transformers", "llguidance", "mlx_vlm", "PIL", "numpy")
    code = f"import runtime.server.app, runtime.methods, sys; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout
