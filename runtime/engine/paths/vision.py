"""Vision-language models through mlx-vlm: loading, and a stream that decodes from images and text.

A vision stream is a SoloStream whose token generator is mlx-vlm's `generate_step` over the
processor's inputs (token ids with the image tokens expanded, pixel values, mask). Everything
after that (sampling, logits processors, stop handling, events) is the text path's. Vision streams
run beside the batch loop, never batched; cancel is checked at every token (mlx-vlm's prefill has no
progress callback, so a prefill runs to its end: short for the image sizes these models take).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from runtime.engine.events import DecodePath
from runtime.engine.paths.solo import SoloStream, TokenSteps


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


class VisionStream(SoloStream):
    path: DecodePath = "vision"

    def _start(self, prefill_step: int) -> TokenSteps:
        from mlx_vlm.generate.ar import generate_step
        from mlx_vlm.generate.dispatch import _prepare_generation_inputs
        from mlx_vlm.models import cache

        request, loaded = self.job.request, self.job.loaded
        # The very preparation mlx_vlm.stream_generate does (its helper), so outputs match it.
        input_ids, pixel_values, mask, extra = _prepare_generation_inputs(
            loaded.model, loaded.processor, request.prompt_text, list(request.images), None, None, {}
        )
        self.progress.prompt_count = int(input_ids.size)
        self.cache = cache.make_prompt_cache(loaded.model.language_model)
        steps = generate_step(
            input_ids,
            loaded.model,
            pixel_values,
            mask,
            max_tokens=request.max_tokens,
            sampler=self.sampler,
            logits_processors=self.processors or None,
            prompt_cache=self.cache,
            prefill_step_size=prefill_step,
            **extra,
        )
        return cast(TokenSteps, steps)

    def can_hand_over(self) -> bool:
        return False
