"""The command line takes the subcommands' options as written, never as abbreviations of others."""

from __future__ import annotations

from runtime.cli import _parser


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
