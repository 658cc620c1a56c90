"""Hub downloads into the Hugging Face cache: resumable, verified, with progress and cancel.

No MLX here: a download runs off the engine thread (and in `runtime pull`).

huggingface_hub gives the listing (`HfApi.model_info` with `files_metadata`: sizes, git oids, LFS
SHA-256), the URLs, headers, session and errors; the transfer itself is ours because
`hf_hub_download` deletes its partial file when a transfer fails, so it cannot resume after an
interruption or a restart. Files are fetched over plain HTTP `resolve` URLs (Xet is never used),
into `blobs/<etag>.incomplete`, continued with a `Range` request, verified, then moved to
`blobs/<etag>` and linked from `snapshots/<commit>/` — the cache layout huggingface_hub reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from runtime import faults

HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]
PROGRESS_INTERVAL_S = 0.1  # at most 10 reports a second, plus the final one
RESUME_ATTEMPTS = 5  # a transfer cut mid-way is continued with a Range request this often per call
RETRY_PAUSE_S = 0.5
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"(?:{_REPO_PART}/)?{_REPO_PART}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of the whole download (every file the patterns select); `file` is the one in transfer."""

    repo_id: str
    revision: str
    file: str
    bytes_done: int
    bytes_total: int
    rate_bytes_per_s: float
    eta_s: float | None


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    etag: str  # the blob's name in the cache: the LFS SHA-256, else the git oid
    sha256: str | None  # LFS files only
    git_oid: str | None  # small (non-LFS) files only


@dataclass(frozen=True)
class _Plan:
    repo_id: str
    revision: str
    commit: str
    files: list[RemoteFile]
    storage: Path  # cache_dir()/models--org--name

    @property
    def snapshot(self) -> Path:
        return self.storage / "snapshots" / self.commit


# --- where things are --------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The Hugging Face hub cache in use, read from the environment now (not at import)."""
    from huggingface_hub import constants

    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def free_bytes(path: Path) -> int:
    """Free space where `path` is (or would be); tests replace this to simulate a full disk."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def storage_dir(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


# --- checks before any network -------------------------------------------------------------------
def check_repo_id(repo_id: str, revision: str | None = None) -> None:
    """Refuse ids that could leave the cache directory or are not hub ids at all."""
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        raise faults.InvalidInput.at(
            "/model_id", f"{repo_id!r} is not a hub id (org/name of letters, digits, '-', '_', '.')"
        )
    if revision is not None and (not _REVISION.fullmatch(revision) or ".." in revision or "//" in revision):
        raise faults.InvalidInput.at("/revision", f"{revision!r} is not a branch, tag or commit")


def _safe_file_name(name: str) -> bool:
    """A listed file must stay inside the snapshot, whatever the hub says."""
    parts = name.split("/")
    return bool(name) and "\\" not in name and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


# --- the cache alone -------------------------------------------------------------------------------
def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The complete snapshot in the cache, or None; no network."""
    check_repo_id(repo_id, revision)
    storage = storage_dir(repo_id)
    commit = revision if revision and _COMMIT.fullmatch(revision) else _read_ref(storage, revision or "main")
    if commit is None or not _COMMIT.fullmatch(commit):
        return None
    snapshot = storage / "snapshots" / commit
    return snapshot if _complete(snapshot) else None


def _read_ref(storage: Path, revision: str) -> str | None:
    try:
        return (storage / "refs" / revision).read_text().strip()
    except OSError:
        return None


def _complete(snapshot: Path) -> bool:
    """config.json is fetched last and the ref written after it, so a cut download never looks
    complete; a sharded model also needs every shard its index names."""
    if not (snapshot / "config.json").is_file():
        return False
    index = snapshot / "model.safetensors.index.json"
    if not index.is_file():
        return True
    import json

    try:
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
    except (OSError, ValueError):
        return False
    return all(_safe_file_name(s) and (snapshot / s).is_file() for s in shards)


# --- download ------------------------------------------------------------------------------------
def download(
    repo_id: str,
    revision: str | None = None,
    *,
    allow_patterns: Iterable[str] = HUB_PATTERNS,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch what the cache lacks of `repo_id` at `revision` (default main); the snapshot dir.

    Raises faults.InvalidInput (bad id), faults.Cancelled (resumable), faults.ModelLoadFailed
    with `reason`: offline, not_found, unauthorized, no_files, disk_space, checksum, unavailable."""
    check_repo_id(repo_id, revision)
    if offline():
        cached = cached_snapshot(repo_id, revision)
        if cached is not None:
            return cached
        raise _offline_fault(repo_id, "HF_HUB_OFFLINE is set")
    plan = _plan(repo_id, revision, list(allow_patterns))
    _check_space(plan)
    reporter = _Reporter(plan, _bytes_present(plan), on_progress)
    for remote in plan.files:
        _fetch(plan, remote, reporter, cancel)
    _write_ref(plan)
    reporter.finish()
    return plan.snapshot


def _plan(repo_id: str, revision: str | None, patterns: list[str]) -> _Plan:
    """The commit and the files to fetch, from the hub's listing."""
    info = _model_info(repo_id, revision)
    files = [_remote_file(repo_id, s) for s in info.siblings or [] if any(fnmatch(s.rfilename, p) for p in patterns)]
    if not files:
        raise _fault(repo_id, f"has no files matching {', '.join(patterns)} (not an MLX model?)", "no_files")
    files.sort(key=lambda f: (f.name == "config.json", f.name))  # config.json last: it marks a snapshot complete
    commit = str(info.sha or "")
    if not _COMMIT.fullmatch(commit):
        raise faults.ModelLoadFailed(
            f"{repo_id}: the hub at {endpoint()} gave no commit for it", model_id=repo_id, reason="unavailable"
        )
    return _Plan(repo_id, revision or "main", commit, files, storage_dir(repo_id))


def _model_info(repo_id: str, revision: str | None) -> Any:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return HfApi(endpoint=endpoint()).model_info(
            repo_id, revision=revision, files_metadata=True, timeout=CONNECT_TIMEOUT_S + READ_TIMEOUT_S
        )
    except OfflineModeIsEnabled:
        raise _offline_fault(repo_id, "HF_HUB_OFFLINE is set") from None
    except (httpx2.ConnectError, httpx2.TimeoutException) as exc:
        raise _offline_fault(repo_id, f"{endpoint()} cannot be reached ({type(exc).__name__}: {_line(exc)})") from None
    except GatedRepoError:
        raise _fault(repo_id, "is gated or private: log in with a token that may read it", "unauthorized") from None
    except RevisionNotFoundError:
        raise _fault(repo_id, f"revision {revision!r} not found on {endpoint()}", "not_found") from None
    except RepositoryNotFoundError:
        raise _fault(repo_id, f"not found on {endpoint()}", "not_found") from None
    except (HfHubHTTPError, httpx2.HTTPError, ValueError) as exc:
        raise _fault(repo_id, f"the hub could not provide it ({type(exc).__name__}: {_line(exc)})") from None


def _remote_file(repo_id: str, sibling: Any) -> RemoteFile:
    name, lfs = sibling.rfilename, sibling.lfs
    if not _safe_file_name(name):
        raise _fault(repo_id, f"the hub listed an unsafe file name {name!r}", "unavailable")
    if lfs is not None:
        return RemoteFile(name, int(lfs["size"]), str(lfs["sha256"]), str(lfs["sha256"]), None)
    if sibling.blob_id is None or sibling.size is None:
        raise _fault(repo_id, f"the hub gave no size or id for {name}", "unavailable")
    return RemoteFile(name, int(sibling.size), str(sibling.blob_id), None, str(sibling.blob_id))


def _blob(plan: _Plan, remote: RemoteFile) -> Path:
    return plan.storage / "blobs" / remote.etag


def _partial(plan: _Plan, remote: RemoteFile) -> Path:
    return plan.storage / "blobs" / f"{remote.etag}.incomplete"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _have(plan: _Plan, remote: RemoteFile) -> int:
    """Bytes of `remote` already on disk: all of it, or what a cut transfer left."""
    if (plan.snapshot / remote.name).is_file() or _blob(plan, remote).is_file():
        return remote.size
    return min(_size(_partial(plan, remote)), remote.size)


def _bytes_present(plan: _Plan) -> int:
    return sum(_have(plan, f) for f in plan.files)


def _check_space(plan: _Plan) -> None:
    needed = sum(f.size for f in plan.files) - _bytes_present(plan)
    free = free_bytes(plan.storage)
    if needed > free:
        raise faults.ModelLoadFailed(
            f"{plan.repo_id}: not enough disk space to download it: {needed} bytes needed, {free} bytes free "
            f"in {cache_dir()}",
            model_id=plan.repo_id,
            reason="disk_space",
            needed_bytes=needed,
            free_bytes=free,
            cache_dir=str(cache_dir()),
        )


def _fetch(plan: _Plan, remote: RemoteFile, reporter: _Reporter, cancel: threading.Event | None) -> None:
    """One file into the cache: skipped when present, else transferred (resuming), verified, linked."""
    from huggingface_hub.utils import WeakFileLock

    pointer, blob = plan.snapshot / remote.name, _blob(plan, remote)
    if not pointer.is_file():
        if not blob.is_file():
            locks = cache_dir() / ".locks" / plan.storage.name
            locks.mkdir(parents=True, exist_ok=True)
            with WeakFileLock(locks / f"{remote.etag}.lock"):  # another process may fetch the same blob
                if not blob.is_file():
                    _transfer(plan, remote, reporter, cancel)
        _link(blob, pointer)
    reporter.file_done(remote.name)


def _transfer(plan: _Plan, remote: RemoteFile, reporter: _Reporter, cancel: threading.Event | None) -> None:
    partial = _partial(plan, remote)
    partial.parent.mkdir(parents=True, exist_ok=True)
    if _size(partial) > remote.size:  # a stale partial of some other content: start over
        partial.unlink()
    for attempt in range(RESUME_ATTEMPTS + 1):
        if _size(partial) >= remote.size:
            break
        if cancel is not None and cancel.is_set():
            raise _cancelled(plan, remote)
        try:
            _get(plan, remote, partial, reporter, cancel)
        except _transient_errors() as exc:
            if attempt == RESUME_ATTEMPTS:
                raise _fault(
                    plan.repo_id,
                    f"the transfer of {remote.name} broke off at {_size(partial)} of {remote.size} bytes "
                    f"({type(exc).__name__}); run it again to resume",
                    "unavailable",
                    file=remote.name,
                ) from None
            if cancel is not None and cancel.wait(RETRY_PAUSE_S):
                raise _cancelled(plan, remote) from None
    _verify(plan, remote, partial)
    os.replace(partial, _blob(plan, remote))


def _transient_errors() -> tuple[type[Exception], ...]:
    """A dropped connection or a timeout: worth continuing where the file stopped."""
    import httpx2

    return (httpx2.TransportError,)


def _get(plan: _Plan, remote: RemoteFile, partial: Path, reporter: _Reporter, cancel: threading.Event | None) -> None:
    """One GET of the rest of the file, appended to the partial file."""
    import httpx2
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    have = _size(partial)
    headers = build_hf_headers(headers={"Accept-Encoding": "identity"})
    if have:
        headers["Range"] = f"bytes={have}-"
    url = hf_hub_url(plan.repo_id, remote.name, revision=plan.commit, endpoint=endpoint())
    timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()  # hf_raise_for_status reads the body for its message
            _raise_for_status(plan, remote, response, hf_raise_for_status)
        if have and response.status_code != 206:  # the server ignored the Range: take the whole body
            reporter.rewind(have)
            have = 0
        with partial.open("ab" if have else "wb") as out:
            for chunk in response.iter_bytes():  # as received: a cut loses nothing already read
                if cancel is not None and cancel.is_set():
                    break  # the partial file is closed (flushed) before Cancelled is raised below
                out.write(chunk)
                reporter.add(remote.name, len(chunk))
    if cancel is not None and cancel.is_set():
        raise _cancelled(plan, remote)


def _raise_for_status(plan: _Plan, remote: RemoteFile, response: Any, raise_for_status: Callable[[Any], None]) -> None:
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        raise_for_status(response)
    except RepositoryNotFoundError:
        raise _fault(plan.repo_id, f"not found on {endpoint()}", "not_found", file=remote.name) from None
    except HfHubHTTPError as exc:
        raise _fault(
            plan.repo_id, f"the hub could not provide {remote.name} ({_line(exc)})", "unavailable", file=remote.name
        ) from None


def _verify(plan: _Plan, remote: RemoteFile, partial: Path) -> None:
    """The SHA-256 of an LFS file (git's blob id for a small one) against the hub's listing; a bad
    file is deleted so the next attempt fetches it afresh."""
    digest = hashlib.sha256() if remote.sha256 else hashlib.sha1(b"blob %d\0" % remote.size)  # noqa: S324 - git's id
    with partial.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    expected = remote.sha256 or remote.git_oid
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise _fault(
            plan.repo_id,
            f"{remote.name} does not match the hub's checksum (expected {expected}, got {digest.hexdigest()}); "
            "the bad file was deleted",
            "checksum",
            file=remote.name,
        )


def _link(blob: Path, pointer: Path) -> None:
    """The snapshot entry: a relative symlink to the blob, as huggingface_hub makes it (a copy where
    the filesystem has no symlinks)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    try:
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    except FileExistsError:
        pass
    except OSError:
        shutil.copyfile(blob, pointer)


def _write_ref(plan: _Plan) -> None:
    """Written last: until the snapshot is whole, the cache does not point at it."""
    if plan.revision == plan.commit:
        return
    ref = plan.storage / "refs" / plan.revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
    tmp.write_text(plan.commit)
    os.replace(tmp, ref)


# --- progress ------------------------------------------------------------------------------------
class _Reporter:
    """Turns byte counts into rate-limited, monotone DownloadProgress reports."""

    def __init__(self, plan: _Plan, present: int, sink: Callable[[DownloadProgress], None] | None) -> None:
        self.plan, self.sink = plan, sink
        self.total = sum(f.size for f in plan.files)
        self.done = self.reported = present
        self.transferred, self.started = 0, time.monotonic()
        self.last_report = 0.0
        self.file = plan.files[0].name if plan.files else ""
        self._emit(force=True)

    def add(self, file: str, count: int) -> None:
        self.file, self.done, self.transferred = file, self.done + count, self.transferred + count
        self._emit(force=False)

    def rewind(self, count: int) -> None:
        self.done -= count  # reports hold at their last value until the bytes are back

    def file_done(self, file: str) -> None:
        self.file = file

    def finish(self) -> None:
        self.done = self.total
        self._emit(force=True)  # the final report, whatever the rate limit says

    def _emit(self, force: bool) -> None:
        now = time.monotonic()
        if self.sink is None or (not force and now - self.last_report < PROGRESS_INTERVAL_S):
            return
        self.last_report, self.reported = now, max(self.reported, self.done)
        elapsed = now - self.started
        rate = self.transferred / elapsed if elapsed > 0 else 0.0
        left = self.total - self.reported
        eta = 0.0 if left <= 0 else (left / rate if rate > 0 else None)
        self.sink(
            DownloadProgress(self.plan.repo_id, self.plan.revision, self.file, self.reported, self.total, rate, eta)
        )


# --- faults --------------------------------------------------------------------------------------
def _fault(repo_id: str, what: str, reason: str = "unavailable", **details: Any) -> faults.ModelLoadFailed:
    return faults.ModelLoadFailed(f"Failed to get model {repo_id}: {what}", model_id=repo_id, reason=reason, **details)


def _offline_fault(repo_id: str, why: str) -> faults.ModelLoadFailed:
    where = cache_dir()
    return faults.ModelLoadFailed(
        f"Failed to get model {repo_id}: offline — not in the local Hugging Face cache ({where}) and the hub "
        f"could not provide it: {why}",
        model_id=repo_id,
        reason="offline",
        cache_dir=str(where),
    )


def _cancelled(plan: _Plan, remote: RemoteFile) -> faults.Cancelled:
    return faults.Cancelled(
        f"the download of {plan.repo_id} was cancelled during {remote.name}; run it again to resume",
        model_id=plan.repo_id,
        file=remote.name,
        bytes_done=_size(_partial(plan, remote)),
    )


def _line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
