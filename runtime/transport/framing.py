"""Line framing: split a byte stream into bounded lines, decode JSON, encode messages.

A line over the size limit is never buffered whole: once the limit is passed the reader keeps only
a short prefix (to recover the request id) and discards the rest up to the next newline.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1 << 16
ID_PREFIX_BYTES = 4096
_LONG_DIGITS = re.compile(rb"\d{19}")
# The id of an oversized request when it sits near the start, as hosts write it:
# {"jsonrpc":"2.0","id":7,...} or {"method":"x","id":"a",...}.
_LEADING_ID = re.compile(
    rb'^\s*\{(?:\s*"(?:jsonrpc|method)"\s*:\s*"[^"\\]*"\s*,)*\s*"id"\s*:\s*'
    rb'(-?\d+|"(?:[^"\\]|\\.)*")\s*[,}]'
)


@dataclass(frozen=True)
class OversizedLine:
    """Stands in for a line that exceeded the limit; `prefix` is its first bytes."""

    size: int
    prefix: bytes


class LineReader:
    """Reads `fd` and yields complete lines (without the newline) or OversizedLine markers."""

    def __init__(self, fd: int, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.fd, self.max_line_bytes = fd, max_line_bytes

    def __iter__(self) -> Iterator[bytes | OversizedLine]:
        buffer = bytearray()
        discarding: OversizedLine | None = None
        while chunk := os.read(self.fd, READ_CHUNK):
            start = 0
            while (newline := chunk.find(b"\n", start)) != -1:
                piece = chunk[start:newline]
                start = newline + 1
                if discarding is not None:
                    yield OversizedLine(discarding.size + len(piece), discarding.prefix)
                    discarding = None
                elif len(buffer) + len(piece) > self.max_line_bytes:
                    yield OversizedLine(len(buffer) + len(piece), bytes((buffer + piece)[:ID_PREFIX_BYTES]))
                    buffer.clear()
                else:
                    buffer += piece
                    yield bytes(buffer)
                    buffer.clear()
            rest = chunk[start:]
            if discarding is not None:
                discarding = OversizedLine(discarding.size + len(rest), discarding.prefix)
            elif len(buffer) + len(rest) > self.max_line_bytes:
                discarding = OversizedLine(len(buffer) + len(rest), bytes((buffer + rest)[:ID_PREFIX_BYTES]))
                buffer.clear()
            else:
                buffer += rest
        if discarding is not None:
            yield discarding
        elif buffer.strip():
            yield bytes(buffer)


def recover_id(prefix: bytes) -> Any:
    """Best-effort id of a request we could not parse in full; None when unsure."""
    match = _LEADING_ID.match(prefix)
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def decode(line: bytes) -> Any:
    """Parse one line; raises ValueError for anything that is not a strict JSON text."""
    try:
        if _LONG_DIGITS.search(line):
            # orjson turns integers beyond 64 bits into floats; ids must come back exactly.
            return _strict(json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float))
        return orjson.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


def _strict(value: Any) -> Any:
    """Refuse lone surrogates, which the stdlib parser accepts and orjson (and UTF-8) does not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError is a ValueError
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def encode(message: dict[str, Any] | list[Any]) -> bytes:
    """One message as one line. JSON escapes newlines inside strings, so it never spans lines."""
    try:
        # NumPy arrays (embedding vectors) are written by orjson directly, on the writer thread.
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        # Integers beyond 64 bits (an echoed id): the stdlib writes them exactly.
        text = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_as_list)
        return text.encode() + b"\n"


def _as_list(value: Any) -> Any:
    """NumPy arrays for the stdlib encoder (orjson writes them itself)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
