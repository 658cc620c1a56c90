"""Build the embedded tiny vision-language model: a LLaVA that mlx-vlm loads.

A small CLIP vision tower (random weights: 2 layers, 56 px images, 14 px patches, so 16 image
tokens) and a projector feed the trained tiny-chat language model, copied in unchanged, so answers
read like tiny-chat's text (and the image still changes them). The tokenizer is tiny-chat's plus an
`<image>` token (it takes a free id below the embedding size, so no weight grows), and the chat
template renders list content with `<image>` for each image part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from runtime.tinymodels.tokenizer import CHAT_TEMPLATE

IMAGE_TOKEN = "<image>"
IMAGE_SIZE, PATCH = 56, 14
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
# ChatML that also renders OpenAI-style list content: text parts as text, image parts as <image>.
VLM_TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n'}}"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% else %}{{ '<image>\\n' }}{% endif %}"
    "{% endfor %}{% endif %}{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"
)


def build_vlm(out_dir: Path, lm_from: Path, seed: int = 0) -> dict:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_vlm.models.llava import llava
    from mlx_vlm.models.llava.config import ModelConfig, TextConfig, VisionConfig
    from tokenizers import AddedToken, Tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.from_file(str(lm_from / "tokenizer.json"))
    tokenizer.add_special_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
    tokenizer.save(str(out_dir / "tokenizer.json"))
    image_id = tokenizer.token_to_id(IMAGE_TOKEN)
    assert image_id is not None, f"{IMAGE_TOKEN} was just added"
    lm_config = json.loads((lm_from / "config.json").read_text())
    if image_id >= lm_config["vocab_size"]:
        raise ValueError(f"no free embedding row for {IMAGE_TOKEN} (id {image_id})")
    config = _config(lm_config, image_id)

    mx.random.seed(seed)
    model_config = ModelConfig.from_dict(config)
    model_config.text_config = TextConfig.from_dict(config["text_config"])
    model_config.vision_config = VisionConfig.from_dict(config["vision_config"])
    weights = dict(tree_flatten(llava.Model(model_config).parameters()))
    for name, value in cast("dict[str, mx.array]", mx.load(str(lm_from / "model.safetensors"))).items():
        weights[f"language_model.{name}"] = value  # tiny-chat's trained weights, unchanged
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})

    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer_config = json.loads((lm_from / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps({**tokenizer_config, "chat_template": VLM_TEMPLATE}, indent=2)
    )
    (out_dir / "preprocessor_config.json").write_text(json.dumps(_preprocessor(), indent=2))
    processor = {
        "processor_class": "LlavaProcessor",
        "patch_size": PATCH,
        "vision_feature_select_strategy": "default",
        "image_token": IMAGE_TOKEN,
        "num_additional_image_tokens": 1,
    }
    (out_dir / "processor_config.json").write_text(json.dumps(processor, indent=2))
    (out_dir / "chat_template.json").write_text(json.dumps({"chat_template": VLM_TEMPLATE}, indent=2))
    return {"path": str(out_dir), "parameters": sum(v.size for v in weights.values()), "image_token_id": image_id}


def _config(lm_config: dict, image_id: int) -> dict:
    text = {k: v for k, v in lm_config.items() if k != "eos_token_id"}
    return {
        "model_type": "llava",
        "text_config": text,
        "vision_config": {
            "model_type": "clip_vision_model",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
            "projection_dim": 64,
        },
        "image_token_index": image_id,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "vocab_size": lm_config["vocab_size"],
        "eos_token_id": lm_config["eos_token_id"],
    }


def _preprocessor() -> dict:
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": IMAGE_SIZE},
        "do_center_crop": True,
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": MEAN,
        "image_std": STD,
        "do_convert_rgb": True,
        "resample": 3,
    }
