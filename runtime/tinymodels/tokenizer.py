"""Train a byte-level BPE tokenizer offline and write the Hugging Face files mlx-lm loads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Ids 0..8 in this order. <|im_end|> (2) ends a turn and <|endoftext|> (0) a document: both are EOS.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
# Single tokens, but not "special" (as in Qwen): decoding keeps them, so mlx-lm's streaming
# detokenizer yields "<think>" and "<tool_call>" as text for its reasoning split and tool parser.
MARKER_TOKENS = SPECIAL_TOKENS[3:]
EOS_TOKEN = "<|im_end|>"

# ChatML with tools and thinking in the Hermes/Qwen2.5/Qwen3 style. mlx-lm picks its `json_tools`
# parser from "<tool_call>" and "tool_call.name" in the template, and its reasoning split from the
# <think> tokens in the vocabulary. Plain chat (no tools, no reasoning) renders exactly as the old
# ChatML template: "<|im_start|>role\ncontent<|im_end|>\n" per message, then "<|im_start|>assistant\n".
CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n\' }}'
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.reasoning_content is string and message.reasoning_content %}"
    "{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{{- content }}"
    "{%- if message.tool_calls %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if content or not loop.first %}{{- '\\n' }}{%- endif %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'<tool_call>\\n{"name": "\' + tool_call.name + \'", "arguments": \' }}'
    "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}"
    "{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def render_chat(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    **kwargs: Any,
) -> str:
    """Render `CHAT_TEMPLATE` as transformers' `apply_chat_template` does (same sandbox and `tojson`)."""
    return _compiled_template().render(
        messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **kwargs
    )


_TEMPLATE_CACHE: dict[str, Any] = {}


def _compiled_template() -> Any:
    if "template" not in _TEMPLATE_CACHE:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        # transformers' tojson: json.dumps with its defaults (no key sorting, no HTML escaping).
        env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )
        _TEMPLATE_CACHE["template"] = env.from_string(CHAT_TEMPLATE)
    return _TEMPLATE_CACHE["template"]


_SPECIAL_SPLIT = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))


def _without_special_tokens(texts: Iterable[str]) -> Iterator[str]:
    """The text between special tokens: the encoder never merges across them, so neither should the BPE."""
    for text in texts:
        yield from (piece for piece in _SPECIAL_SPLIT.split(text) if piece)


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 4096) -> None:
    """Train the BPE on `texts` and write tokenizer.json and tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    # A ByteLevel decoder makes mlx-lm pick its BPE streaming detokenizer.
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_without_special_tokens(texts), trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    _unmark_special(out_dir / "tokenizer.json")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 2048,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _unmark_special(path: Path) -> None:
    """Give the marker tokens `"special": false` (still single, never-split tokens) and check the ids."""
    content = json.loads(path.read_text(encoding="utf-8"))
    ids = {}
    for token in content["added_tokens"]:
        ids[token["content"]] = token["id"]
        if token["content"] in MARKER_TOKENS:
            token["special"] = False
    assert ids == {token: i for i, token in enumerate(SPECIAL_TOKENS)}, ids
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
