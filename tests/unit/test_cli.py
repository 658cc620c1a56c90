"""The command line takes the subcommands' options as written, never as abbreviations of others;
`runtime serve` binds beyond loopback only with a key or --allow-remote."""

from __future__ import annotations

import pytest

from runtime.cli import _parser
from runtime.server.http import RemoteRefused, ServeOptions, check_exposure, is_loopback


def test_demo_prompt_is_the_demos_prompt_not_an_abbreviation_of_the_prompt_cache_options() -> None:
    args = _parser().parse_args(["demo", "--prompt", "What is 3 plus 4?"])
    assert args.prompt == "What is 3 plus 4?"


def test_top_level_options_are_taken_only_in_full() -> None:
    parser = _parser()
    assert parser.parse_args(["--stdio", "--prompt-cache-entries", "2"]).prompt_cache_entries == 2
    try:
        parser.parse_args(["--stdio", "--prompt-cache-ent", "2"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("an abbreviated option was accepted")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])
def test_loopback_addresses_and_localhost_bind_without_a_key(host: str) -> None:
    assert is_loopback(host)
    check_exposure(ServeOptions(host=host))


NOT_LOOPBACK = [
    "127.evil.example",
    "127.0.0.1.nip.io",
    "0.0.0.0",
    "::",
    "",
    "10.0.0.1",
    "::ffff:10.0.0.1",
    "localhost.x",
]


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_any_other_host_needs_a_key_or_allow_remote(host: str) -> None:
    assert not is_loopback(host)  # a name that starts with "127." resolves wherever its owner likes
    with pytest.raises(RemoteRefused):
        check_exposure(ServeOptions(host=host))
    check_exposure(ServeOptions(host=host, api_key="k"))
    check_exposure(ServeOptions(host=host, allow_remote=True))
