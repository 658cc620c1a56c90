"""A stream that decodes from images and text through mlx-vlm (engine/vlm.py loads the models).

A vision stream is a SoloStream whose token generator is mlx-vlm's `generate_step` over the
processor's inputs (token ids with the image tokens expanded, pixel values, mask). Everything
after that (sampling, logits processors, stop handling, events) is the text path's. Vision streams
run beside the batch loop, never batched; cancel is checked at every token (mlx-vlm's prefill has no
progress callback, so a prefill runs to its end: short for the image sizes these models take).
"""

from __future__ import annotations

from typing import cast

from runtime.engine.events import DecodePath
from runtime.engine.paths.solo import SoloStream, TokenSteps


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
