"""Hold back generated text until it cannot be the start of a stop sequence.

Works on token entries, not bare text, so that a token whose text is part of a stop sequence is
never sent. Entries with empty text (the detokenizer is waiting for the rest of a multi-byte
character) are held too, so the finished character goes out with them.
"""

from __future__ import annotations

from dataclasses import replace

from runtime.engine.events import TokenEvent


class StopFilter:
    def __init__(self, stop_sequences: tuple[str, ...] = ()) -> None:
        self.stops = tuple(s for s in stop_sequences if s)
        self._pending: list[TokenEvent] = []
        self._last_token = 0
        self.matched: str | None = None  # the stop sequence that ended the text, once one has

    def push(self, entry: TokenEvent) -> tuple[list[TokenEvent], bool]:
        """Add one entry; return the entries safe to send and whether a stop sequence matched."""
        self._last_token = entry.token_id
        if not self.stops:
            # Nothing to look for: all text goes at once. Only entries without text (the rest of a
            # multi-byte character is still to come) are ever held, and they go with the next text.
            if not entry.text:
                self._pending.append(entry)
                return [], False
            if self._pending:
                released, self._pending = self._pending, []
                released.append(entry)
                return released, False
            return [entry], False
        self._pending.append(entry)
        text = "".join(e.text for e in self._pending)
        found = [(i, s) for s in self.stops if (i := text.find(s)) >= 0]
        if found:
            match, self.matched = min(found, key=lambda hit: hit[0])
            return self._cut(match), True
        return self._release(len(text) - self._held_suffix(text)), False

    def finish(self, tail_text: str = "") -> list[TokenEvent]:
        """The stream ended without a stop match so far: release everything held.

        `tail_text` is what the detokenizer still held back. It joins the last held entry, or
        comes as an entry of its own carrying the last token's id (as mlx-lm's final response
        repeats the last token), and stop sequences are still looked for in it.
        """
        released: list[TokenEvent] = []
        if tail_text:
            if self._pending:
                last = self._pending.pop()
                entry = replace(last, text=last.text + tail_text)
            else:
                entry = TokenEvent(self._last_token, tail_text)
            released, matched = self.push(entry)
            if matched:
                return released
        held, self._pending = self._pending, []
        return released + held

    def _held_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that begins some stop sequence."""
        longest = min(len(text), max(len(s) for s in self.stops) - 1)
        for size in range(longest, 0, -1):
            if any(s.startswith(text[-size:]) for s in self.stops):
                return size
        return 0

    def _release(self, safe_chars: int) -> list[TokenEvent]:
        """Release the front entries whose text lies within `safe_chars`, ending on real text."""
        used, count = 0, 0
        for index, entry in enumerate(self._pending):
            if used + len(entry.text) > safe_chars:
                break
            used += len(entry.text)
            if entry.text:
                count = index + 1
        released, self._pending = self._pending[:count], self._pending[count:]
        return released

    def _cut(self, match: int) -> list[TokenEvent]:
        released, used = [], 0
        for entry in self._pending:
            if used >= match:
                break
            keep = entry.text[: match - used]
            released.append(entry if keep == entry.text else replace(entry, text=keep))
            used += len(entry.text)
        self._pending = []
        return released
