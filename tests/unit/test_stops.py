"""Stop sequences are never sent, even split across tokens or inside multi-byte characters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.engine.events import TokenEvent
from runtime.engine.stops import StopFilter


def run_filter(pieces: list[str], stops: tuple[str, ...]) -> tuple[str, bool, list[TokenEvent]]:
    stop_filter, sent = StopFilter(stops), []
    for index, piece in enumerate(pieces):
        released, matched = stop_filter.push(TokenEvent(index, piece))
        sent += released
        if matched:
            return "".join(e.text for e in sent), True, sent
    sent += stop_filter.finish()
    return "".join(e.text for e in sent), False, sent


def test_a_stop_sequence_split_across_tokens_is_never_sent() -> None:
    text, matched, sent = run_filter(["Hello wor", "ld, ", "EN", "D here"], ("END",))
    assert (text, matched) == ("Hello world, ", True)
    assert [e.token_id for e in sent] == [0, 1]


def test_text_that_only_looks_like_a_stop_prefix_is_released_at_the_end() -> None:
    text, matched, _ = run_filter(["abc", "E", "N"], ("END",))
    assert (text, matched) == ("abcEN", False)


def test_a_token_holding_part_of_a_multibyte_character_waits_for_the_rest() -> None:
    stop_filter = StopFilter(())
    assert stop_filter.push(TokenEvent(1, "")) == ([], False)  # detokenizer waits for the 2nd byte
    released, _ = stop_filter.push(TokenEvent(2, "é"))
    assert [(e.token_id, e.text) for e in released] == [(1, ""), (2, "é")]


def test_the_earliest_of_several_stop_sequences_wins() -> None:
    text, matched, _ = run_filter(["one two three"], ("three", "two"))
    assert (text, matched) == ("one ", True)


pieces = st.lists(st.text(alphabet="abé☕\n ", min_size=0, max_size=4), max_size=30)
stops = st.lists(st.text(alphabet="abé☕\n ", min_size=1, max_size=4), min_size=1, max_size=3).map(tuple)


def first_stop(pieces: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    """The reference: generation stops at the first token after which a stop sequence appears in the
    output (as OpenAI and vLLM stop), and the output is cut where the earliest one found starts."""
    for count in range(1, len(pieces) + 1):
        text = "".join(pieces[:count])
        found = [i for i in (text.find(s) for s in stops) if i >= 0]
        if found:
            return text[: min(found)], True
    return "".join(pieces), False


@settings(max_examples=400, deadline=None)
@given(pieces, stops)
def test_sent_text_is_the_output_up_to_the_first_stop_and_never_contains_one(
    pieces: list[str], stops: tuple[str, ...]
) -> None:
    text, matched, _ = run_filter(pieces, stops)
    assert (text, matched) == first_stop(pieces, stops)
    for stop in stops:
        assert stop not in text


def test_a_stop_found_first_ends_the_output_even_if_a_longer_one_would_start_earlier() -> None:
    text, matched, _ = run_filter([" ", "\n", " "], ("\n", " \n "))
    assert (text, matched) == (" ", True)


def test_text_the_detokenizer_releases_only_at_the_end_is_sent_with_the_last_token() -> None:
    stop_filter = StopFilter(())
    released, _ = stop_filter.push(TokenEvent(7, "Hello w"))
    assert [e.text for e in released] == ["Hello w"]
    assert [(e.token_id, e.text) for e in stop_filter.finish("\ufffd")] == [(7, "\ufffd")]


def test_a_stop_sequence_completed_by_the_final_text_is_still_not_sent() -> None:
    stop_filter = StopFilter(("a b",))
    sent = stop_filter.push(TokenEvent(1, "xa"))[0] + stop_filter.push(TokenEvent(2, ""))[0]
    sent += stop_filter.finish(" b")
    assert "".join(e.text for e in sent) == "x"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="ab é", min_size=0, max_size=3), max_size=30), st.text(alphabet="ab é", max_size=3))
def test_without_stop_sequences_text_goes_at_once_and_entries_without_text_wait_for_the_next(
    pieces: list[str], tail: str
) -> None:
    stop_filter, held = StopFilter(()), []
    for index, piece in enumerate(pieces):
        released, matched = stop_filter.push(TokenEvent(index, piece))
        held.append(index)
        assert not matched
        if piece:  # everything so far goes, in order, ending with this entry
            assert [e.token_id for e in released] == held
            held = []
        else:
            assert released == []
    final = stop_filter.finish(tail)
    if tail and held:  # the detokenizer's tail joins the last entry still held (one without text)
        assert [e.token_id for e in final] == held and final[-1].text == tail
    elif tail:  # or comes with the last token's id
        assert [(e.token_id, e.text) for e in final] == [(len(pieces) - 1 if pieces else 0, tail)]
    else:
        assert [e.token_id for e in final] == held
