"""Images from the wire: base64, data: URIs, allowed local files and allowed URLs, checked and decoded.

Everything here runs before any model work (on the preparation thread, never the reader): a host
gets -32602 with the field's path for an image it may not use or that is not an image. By default
a host can only send image bytes: file paths need `--allow-image-dir`, URLs `--allow-image-url`
(a prefix), so a host cannot make the runtime read arbitrary files or fetch arbitrary addresses.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import posixpath
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import faults

# The decoders allowed to parse image bytes (JPEG's also opens the MPO files many cameras write).
FORMATS = ("BMP", "GIF", "JPEG", "PNG", "WEBP")
DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]+)*),(?P<data>.*)$", re.DOTALL)
FETCH_TIMEOUT_S = 10.0
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int
    max_pixels: int
    max_images: int
    dirs: tuple[Path, ...] = ()
    url_prefixes: tuple[str, ...] = ()


def policy_from(limits: Any) -> ImagePolicy:
    return ImagePolicy(
        max_bytes=limits.max_image_bytes,
        max_pixels=limits.max_image_pixels,
        max_images=limits.max_images,
        dirs=tuple(Path(d).resolve() for d in limits.image_dirs),
        url_prefixes=tuple(limits.image_url_prefixes),
    )


def load_image(source: Any, path: str, policy: ImagePolicy) -> Any:
    """A source is a string (data: URI, base64, http(s) URL or file path) or {data|path|url}."""
    if isinstance(source, dict):
        kinds = [k for k in ("data", "path", "url") if k in source]
        if len(kinds) != 1 or not isinstance(source[kinds[0]], str):
            raise faults.InvalidInput.at(path, "an image is one of {data}, {path} or {url}, as a string")
        kind = kinds[0]
        return _decode(_read(kind, source[kind], f"{path}/{kind}", policy), f"{path}/{kind}", policy)
    if not isinstance(source, str) or not source:
        raise faults.InvalidInput.at(path, "an image is a non-empty string or an object")
    return _decode(_read(_kind_of(source), source.removeprefix("file://"), path, policy), path, policy)


def _kind_of(text: str) -> str:
    """A data: URI or base64 is data; http(s) a URL; file:// or a short path-like non-base64 a path."""
    if text.startswith("data:"):
        return "data"
    if text.startswith(("http://", "https://")):
        return "url"
    if text.startswith("file://"):
        return "path"
    if len(text) % 4 == 0 and BASE64.fullmatch(text):  # what b64decode(validate=True) accepts, not decoded twice
        return "data"
    looks_like_path = len(text) < 4096 and (text.startswith(("~", ".")) or os.sep in text)
    return "path" if looks_like_path else "data"


def _read(kind: str, value: str, path: str, policy: ImagePolicy) -> bytes:
    if kind == "data":
        return _from_base64(value, path, policy)
    if kind == "path":
        return _from_file(value, path, policy)
    return _from_url(value, path, policy)


def _from_base64(value: str, path: str, policy: ImagePolicy) -> bytes:
    if value.startswith("data:"):
        match = DATA_URI.match(value)
        if match is None or ";base64" not in (match.group("params") or ""):
            raise faults.InvalidInput.at(path, "a data: URI must be base64 (data:image/png;base64,...)")
        value = match.group("data")
    if len(value) > policy.max_bytes * 4 // 3 + 8:
        raise faults.InvalidInput.at(path, f"the image is larger than the {policy.max_bytes}-byte limit")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise faults.InvalidInput.at(path, "the image is not valid base64") from None


def _from_file(value: str, path: str, policy: ImagePolicy) -> bytes:
    if not policy.dirs:
        raise faults.InvalidInput.at(
            path, "image file paths are not allowed (start the runtime with --allow-image-dir)"
        )
    resolved = Path(value).expanduser().resolve()
    if not any(resolved.is_relative_to(d) for d in policy.dirs):
        raise faults.InvalidInput.at(path, "the image path is outside the allowed directories")
    if not resolved.is_file():
        raise faults.InvalidInput.at(path, "no such image file")
    if resolved.stat().st_size > policy.max_bytes:
        raise faults.InvalidInput.at(path, f"the image is larger than the {policy.max_bytes}-byte limit")
    return resolved.read_bytes()


def url_allowed(url: str, prefixes: tuple[str, ...]) -> bool:
    """Scheme, host and port equal to an allowed prefix's, and the normalised path under its path.
    (A plain string prefix would let https://img.example.com.evil.net or user@host tricks through.)"""
    target = urllib.parse.urlsplit(url)
    if target.scheme not in ("http", "https") or target.username or target.password or not target.hostname:
        return False
    path = posixpath.normpath(urllib.parse.unquote(target.path) or "/")
    for prefix in prefixes:
        allowed = urllib.parse.urlsplit(prefix)
        same_origin = (target.scheme, target.hostname, target.port) == (allowed.scheme, allowed.hostname, allowed.port)
        base = allowed.path or "/"
        if same_origin and (path == base.rstrip("/") or path.startswith(base if base.endswith("/") else base + "/")):
            return True
    return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect could lead anywhere: it is an error, not followed


_OPENER = urllib.request.build_opener(_NoRedirects)


def _from_url(value: str, path: str, policy: ImagePolicy) -> bytes:
    if not url_allowed(value, policy.url_prefixes):
        raise faults.InvalidInput.at(path, "this image URL is not allowed (start the runtime with --allow-image-url)")
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    chunks, size = [], 0
    try:
        with _OPENER.open(value, timeout=FETCH_TIMEOUT_S) as response:
            if response.status != 200:
                raise OSError(f"status {response.status}")
            while size <= policy.max_bytes and (chunk := response.read(64 * 1024)):
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError("too slow")
    except Exception:
        # Not the reason: the host must not learn what lies behind addresses it cannot reach itself.
        raise faults.InvalidInput.at(path, "the image could not be fetched") from None
    if size > policy.max_bytes:
        raise faults.InvalidInput.at(path, f"the image is larger than the {policy.max_bytes}-byte limit")
    return b"".join(chunks)


def _decode(data: bytes, path: str, policy: ImagePolicy) -> Any:
    from PIL import Image, UnidentifiedImageError

    if len(data) > policy.max_bytes:
        raise faults.InvalidInput.at(path, f"the image is larger than the {policy.max_bytes}-byte limit")
    try:
        # Only the allowed decoders ever parse the bytes (no exotic format parser is reachable).
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        supported = ", ".join(FORMATS)
        raise faults.InvalidInput.at(path, f"not an image in a supported format ({supported})") from None
    if image.width * image.height > policy.max_pixels:
        raise faults.InvalidInput.at(
            path, f"the image has {image.width}x{image.height} pixels; the limit is {policy.max_pixels}"
        )
    try:
        image.load()  # decodes now: a truncated or corrupt file fails here, not in the model
        return image.convert("RGB")
    except Exception as exc:
        raise faults.InvalidInput.at(path, f"the image cannot be decoded: {type(exc).__name__}: {exc}") from None
