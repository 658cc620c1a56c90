"""`runtime pull ID|REPO`: download a hub model into the Hugging Face cache, the way `ollama pull` feels.

A live progress bar on stderr (one updating line on a terminal, a line every few seconds
otherwise), a resumable download, and Ctrl-C that stops cleanly: the download runs on a worker
thread so the main thread can take the interrupt, set the cancel event and wait for the partial
file to be closed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from runtime import faults
from runtime.catalog import HUB
from runtime.engine.download import DownloadProgress, cache_dir, download

LINE_EVERY_S = 2.0  # progress lines when stderr is not a terminal
STOP_WAIT_S = 30.0  # how long Ctrl-C waits for the download to close its partial file
INTERRUPTED = 130  # the shell's code for "ended by SIGINT"


class ProgressBar:
    """Bytes, percent, rate and ETA: redrawn in place on a terminal, printed now and then elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.tty = out, out.isatty()
        self.last_line, self.drawn = 0.0, False

    def __call__(self, step: DownloadProgress) -> None:
        final = step.bytes_done >= step.bytes_total
        if self.tty:
            self.out.write("\r" + self.line(step) + "\x1b[K")
            self.drawn = True
        elif final or time.monotonic() - self.last_line >= LINE_EVERY_S:
            self.last_line = time.monotonic()
            self.out.write(self.line(step) + "\n")
        self.out.flush()

    def end(self) -> None:
        """Leave the terminal on a fresh line."""
        if self.drawn:
            self.out.write("\n")
            self.out.flush()
            self.drawn = False

    @staticmethod
    def line(step: DownloadProgress) -> str:
        percent = 100.0 * step.bytes_done / step.bytes_total if step.bytes_total else 100.0
        eta = "--" if step.eta_s is None else _duration(step.eta_s)
        return (
            f"{step.repo_id}  {human_size(step.bytes_done)} / {human_size(step.bytes_total)}  {percent:5.1f}%  "
            f"{human_size(step.rate_bytes_per_s)}/s  ETA {eta}  {step.file}"
        )


def run_pull(args: argparse.Namespace) -> int:
    bar, cancel = ProgressBar(sys.stderr), threading.Event()
    outcome: dict[str, Path | BaseException] = {}
    try:
        repo, revision = _what_to_pull(args)
    except ValueError as exc:
        print(f"runtime pull: {exc}", file=sys.stderr)
        return 2

    def work() -> None:
        try:
            outcome["path"] = download(repo, revision, on_progress=bar, cancel=cancel)
        except BaseException as exc:  # handed to the main thread, which reports it
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="pull", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        worker.join(STOP_WAIT_S)
        bar.end()
        print(f"runtime pull: stopped; run `runtime pull {args.model_id}` again to resume", file=sys.stderr)
        return INTERRUPTED
    bar.end()
    return _report(args.model_id, outcome)


def _what_to_pull(args: argparse.Namespace) -> tuple[str, str | None]:
    """A registry id pulls its hub repo (at its revision); anything else is taken as a repo."""
    from runtime.cli.models import registry
    from runtime.config import ConfigError
    from runtime.server.models_file import ModelsFileError

    try:
        entry = registry(args).lookup(args.model_id)
    except (ConfigError, ModelsFileError) as exc:
        raise ValueError(str(exc)) from None
    if entry is None:
        return args.model_id, args.revision
    if entry.kind != HUB:
        raise ValueError(f"{args.model_id} is {entry.kind} ({entry.name}): it is on this machine, nothing to pull")
    return entry.name, args.revision or entry.revision


def _report(model_id: str, outcome: dict[str, Path | BaseException]) -> int:
    error = outcome.get("error")
    if isinstance(error, faults.InvalidInput):
        print(f"runtime pull: {error.errors[0]['message']}", file=sys.stderr)
        return 2
    if isinstance(error, faults.Fault):
        print(f"runtime pull: {error.message}", file=sys.stderr)
        return 1
    if isinstance(error, BaseException):
        raise error
    print(f"runtime pull: {model_id} is in {cache_dir()}", file=sys.stderr)
    print(outcome["path"])  # stdout: the snapshot directory, for scripts
    return 0


def human_size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"
