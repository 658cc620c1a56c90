"""A small Hugging Face hub on loopback: enough of the file API for huggingface_hub to download a repo.

It serves directories as repos (`FakeHub({"org/name": path})`) at one fixed commit:
`/api/models/{repo}[/revision/{rev}]` (siblings with sizes, git ids and LFS metadata) and
`/{repo}/resolve/{rev}/{file}` (HEAD and GET, `Range` → 206, the X-Repo-Commit / ETag /
X-Linked-* headers). Test knobs: cut a file's transfer after N bytes (the connection is closed),
corrupt a file's bytes, throttle transfers; every request is logged so tests can see the Ranges.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf")  # stored with LFS on the real hub: sha256 in the listing
PIECE_BYTES = 16 * 1024
SOCKET_TIMEOUT_S = 10.0
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    file: str | None  # for resolve requests
    range: str | None
    status: int
    bytes_sent: int


@dataclass(frozen=True)
class _File:
    name: str
    data: bytes
    git_oid: str
    sha256: str | None  # LFS files only

    @property
    def etag(self) -> str:
        return self.sha256 or self.git_oid


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's blob id


def _load(directory: Path) -> dict[str, _File]:
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name, data = path.relative_to(directory).as_posix(), path.read_bytes()
        lfs = name.endswith(LFS_SUFFIXES)
        files[name] = _File(name, data, _git_oid(data), hashlib.sha256(data).hexdigest() if lfs else None)
    return files


class FakeHub:
    """`with FakeHub({...}) as hub:` serves on `hub.url` until the block ends."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo: _load(directory) for repo, directory in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in repos}  # noqa: S324
        self.cuts: dict[str, list[int]] = {}  # file -> bytes after which each next GET is cut
        self.corrupt: set[str] = set()
        self.throttle_bytes_per_s: float | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fakehub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- knobs and what happened ---
    def cut(self, file: str, after_bytes: int, times: int = 1) -> None:
        with self._lock:
            self.cuts[file] = [after_bytes] * times

    def gets(self, file: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.file == file]

    def bytes_sent(self, file: str) -> int:
        return sum(r.bytes_sent for r in self.gets(file))

    def file_bytes(self, repo: str, file: str) -> bytes:
        return self.repos[repo][file].data

    def _next_cut(self, file: str) -> int | None:
        with self._lock:
            pending = self.cuts.get(file)
            return pending.pop(0) if pending else None

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.hub = hub
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S  # a stuck client never holds a server thread for long
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the request log is in hub.requests

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._route(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(body=False)

    def _route(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/api/models/"):
            self._model_info(path[len("/api/models/") :])
        elif "/resolve/" in path:
            self._resolve(path.lstrip("/"), body)
        else:
            self._error(404, "EntryNotFound", "no such endpoint")

    # --- /api/models/{repo}[/revision/{rev}] ---
    def _model_info(self, rest: str) -> None:
        repo, _, revision = rest.partition("/revision/")
        files = self.hub.repos.get(repo)
        if files is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        commit = self.hub.commits[repo]
        if revision not in ("", "main", commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        siblings = [_sibling(f) for f in files.values()]
        self._json(200, {"id": repo, "modelId": repo, "sha": commit, "private": False, "siblings": siblings})

    # --- /{repo}/resolve/{rev}/{file} ---
    def _resolve(self, rest: str, body: bool) -> None:
        repo, _, tail = rest.partition("/resolve/")
        revision, _, name = tail.partition("/")
        files = self.hub.repos.get(repo)
        if files is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", self.hub.commits[repo]):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        entry = files.get(name)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist")
        self._serve(repo, entry, body)

    def _serve(self, repo: str, entry: _File, body: bool) -> None:
        data = _corrupted(entry.data) if entry.name in self.hub.corrupt else entry.data
        start, status = self._range_start(len(data))
        self.send_response(status)
        self.send_header("X-Repo-Commit", self.hub.commits[repo])
        self.send_header("ETag", f'"{entry.git_oid}"')
        if entry.sha256:
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        sent = self._body(entry.name, data[start:]) if body else 0
        self.hub._log(Request(self.command, self.path, entry.name, self.headers.get("Range"), status, sent))

    def _range_start(self, size: int) -> tuple[int, int]:
        match = _RANGE.fullmatch(self.headers.get("Range") or "")
        if match is None or int(match.group(1)) >= size:
            return 0, 200
        return int(match.group(1)), 206

    def _body(self, name: str, data: bytes) -> int:
        """Send `data` in pieces (throttled if asked); a cut closes the connection mid-body."""
        cut, sent = self.hub._next_cut(name), 0
        try:
            while sent < len(data):
                limit = len(data) if cut is None else min(len(data), cut)
                if sent >= limit:
                    self._drop()
                    break
                piece = data[sent : min(sent + PIECE_BYTES, limit)]
                self.wfile.write(piece)
                sent += len(piece)
                if self.hub.throttle_bytes_per_s:
                    time.sleep(len(piece) / self.hub.throttle_bytes_per_s)
            self.wfile.flush()
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a cancel): nothing more to send
        return sent

    def _drop(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _error(self, status: int, code: str, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.hub._log(Request(self.command, self.path, None, self.headers.get("Range"), status, 0))

    def _json(self, status: int, value: Any) -> None:
        payload = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.hub._log(Request(self.command, self.path, None, None, status, len(payload)))


def _sibling(entry: _File) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": entry.name, "size": len(entry.data), "blobId": entry.git_oid}
    if entry.sha256:
        # The real hub's blobId of an LFS file is the pointer's oid; a fixed size stands in for the pointer.
        sibling["lfs"] = {"size": len(entry.data), "sha256": entry.sha256, "pointerSize": 134}
    return sibling


def _corrupted(data: bytes) -> bytes:
    """Same length, different bytes in the middle: only a checksum can tell."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
