"""Training methods: full fine-tuning, LoRA, QLoRA, prefix and prompt tuning (via peft).

:func:`check_method` refuses impossible combinations before any weights are downloaded;
:func:`apply_method` wraps a loaded model.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import TYPE_CHECKING, Any

from .recipe import Recipe, RecipeError

if TYPE_CHECKING:
    import torch

PEFT_TASK_TYPES = {
    "sequence-classification": "SEQ_CLS",
    "token-classification": "TOKEN_CLS",
    "question-answering": "QUESTION_ANS",
    "causal-lm": "CAUSAL_LM",
    "seq2seq": "SEQ_2_SEQ_LM",
}
PROMPT_METHODS = ("prefix", "prompt")


def resolved_save(recipe: Recipe) -> str:
    """What gets pushed: ``adapter``, ``merged`` or ``both`` (full fine-tuning always pushes the model)."""
    if recipe.method.name == "full":
        return "merged"
    if recipe.push and recipe.push.save:
        return recipe.push.save
    return "adapter"


def _accepts_cache(model_cls: type) -> bool:
    params = inspect.signature(model_cls.forward).parameters
    return "cache" in params or "past_key_values" in params


def check_method(recipe: Recipe, model_cls: type | None) -> None:
    """Refuse a method/task/hardware combination that cannot work, with the reason and the fix."""
    method = recipe.method.name
    if method == "qlora":
        import torch

        if not torch.cuda.is_available():
            raise RecipeError(
                "method qlora loads the base model in 4-bit NF4 and needs a CUDA GPU with bitsandbytes; "
                "this machine has no CUDA device — use method: lora (same adapter, full-precision base)"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise RecipeError("method qlora needs the bitsandbytes package: pip install bitsandbytes")
    if method in PROMPT_METHODS and recipe.task in ("token-classification", "question-answering"):
        raise RecipeError(
            f"method {method} prepends virtual tokens, which shifts the per-token outputs that "
            f"{recipe.task} needs; use lora or full"
        )
    if method == "prefix" and model_cls is not None:
        params = inspect.signature(model_cls.forward).parameters
        if recipe.task == "sequence-classification" and "past_key_values" not in params:
            raise RecipeError(
                f"method prefix feeds learned past key values into the model, but {model_cls.__name__} takes "
                "no past_key_values argument (peft's prefix tuning for classification needs it); "
                "use lora or prompt"
            )
        if not _accepts_cache(model_cls):
            raise RecipeError(
                f"method prefix feeds learned past key values into the model, but {model_cls.__name__} takes "
                "no past key values (cache); use lora or prompt"
            )
    save = recipe.push.save if recipe.push else None
    if method == "full" and save in ("adapter", "both"):
        raise RecipeError(f"push.save: {save} needs a PEFT method (full fine-tuning has no adapter); use merged")
    if method in PROMPT_METHODS and save in ("merged", "both"):
        raise RecipeError(
            f"push.save: {save} — {method} tuning learns virtual tokens that cannot be merged into the "
            "weights; use adapter"
        )


def head_modules(model: torch.nn.Module) -> list[str]:
    """Names of the task head's top-level modules: the children besides the base model that have weights."""
    prefix = getattr(model, "base_model_prefix", "")
    return [
        name
        for name, child in model.named_children()
        if name != prefix and any(True for _ in child.parameters()) and name not in ("lm_head",)
    ]


def quantization_config() -> Any:
    """4-bit NF4 with double quantization (QLoRA)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
    )


def apply_method(model: torch.nn.Module, recipe: Recipe, tokenizer_name: str | None = None) -> torch.nn.Module:
    """Wrap ``model`` for the recipe's method; returns it unchanged for full fine-tuning."""
    spec = recipe.method
    if spec.name == "full":
        return model
    from peft import (
        LoraConfig,
        PrefixTuningConfig,
        PromptTuningConfig,
        PromptTuningInit,
        get_peft_model,
        prepare_model_for_kbit_training,
    )

    task_type = PEFT_TASK_TYPES[recipe.task]
    heads = spec.modules_to_save
    if heads is None and recipe.task in (
        "sequence-classification",
        "token-classification",
        "question-answering",
    ):
        heads = head_modules(model)
    config: Any
    if spec.name in ("lora", "qlora"):
        if spec.name == "qlora":
            model = prepare_model_for_kbit_training(model)
        config = LoraConfig(
            task_type=task_type,
            r=spec.r,
            lora_alpha=spec.alpha,
            lora_dropout=spec.dropout,
            target_modules=spec.target_modules,
            modules_to_save=heads,
        )
    elif spec.name == "prefix":
        config = PrefixTuningConfig(
            task_type=task_type, num_virtual_tokens=spec.num_virtual_tokens, modules_to_save=heads
        )
    else:
        init = {}
        if spec.prompt_init_text:
            init = {
                "prompt_tuning_init": PromptTuningInit.TEXT,
                "prompt_tuning_init_text": spec.prompt_init_text,
                "tokenizer_name_or_path": tokenizer_name,
            }
        config = PromptTuningConfig(
            task_type=task_type, num_virtual_tokens=spec.num_virtual_tokens, modules_to_save=heads, **init
        )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        if "target_modules" in str(err) or "Target modules" in str(err):
            names = sorted({n.split(".")[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
            raise RecipeError(
                f"peft cannot pick LoRA target modules for this model ({err}); set method.target_modules from {names}"
            ) from err
        raise
