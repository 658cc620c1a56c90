"""Loading vision-language models through mlx-vlm (paths/vision.py decodes with them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def is_vision_config(config: dict[str, Any]) -> bool:
    return "vision_config" in config


def load_vision(path: Path, eos_ids: list[int] | None) -> tuple[Any, Any, Any]:
    """(model, processor, mlx-lm tokenizer wrapper): the wrapper gives the text path what it uses."""
    from mlx_lm.tokenizer_utils import load as load_tokenizer
    from mlx_vlm import load as load_vlm

    model, processor = load_vlm(str(path))
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is not None:
        # mlx-vlm's processors pass tokenizer kwargs (padding, ...) on to the image processor,
        # which transformers 5 refuses ("unexpected keyword argument 'padding'").
        object.__setattr__(processor, "image_processor", _KnownKwargsOnly(image_processor))
    return model, processor, load_tokenizer(path, eos_token_ids=eos_ids)


def vision_prompt(model: Any, processor: Any, prompt: str, images: int) -> str | None:
    """A plain prompt through the model's chat template with its image placeholders, as mlx-vlm's
    own CLI renders it; None when the model has no chat template."""
    from mlx_vlm.prompt_utils import apply_chat_template

    tokenizer = getattr(processor, "tokenizer", processor)
    if not getattr(processor, "chat_template", None) and not getattr(tokenizer, "chat_template", None):
        return None
    return str(apply_chat_template(processor, model.config, prompt, num_images=images))


class _KnownKwargsOnly:
    """An image processor that drops the keyword arguments it does not declare."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._known = set(getattr(getattr(inner, "valid_kwargs", None), "__annotations__", {}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner(*args, **self._keep(kwargs))

    def preprocess(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.preprocess(*args, **self._keep(kwargs))

    def _keep(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in kwargs.items() if not self._known or k in self._known}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
