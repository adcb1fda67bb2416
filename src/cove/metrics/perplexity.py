"""Perplexity of texts under a causal language model (Cove's module for ``evaluate-metric/perplexity``).

The model is loaded with transformers from ``model_id`` (a hub repo on ``HF_ENDPOINT`` or a local folder).
"""

import datasets
import evaluate
import numpy as np
import torch
from torch.nn import CrossEntropyLoss
from transformers import AutoModelForCausalLM, AutoTokenizer

_DESCRIPTION = "Perplexity: the exponentiated average negative log-likelihood of each text under a causal LM."
_KWARGS_DESCRIPTION = """
Args:
    model_id (`str`): A causal LM (hub repo id or local path).
    predictions (`list` of `str`): The texts to score.
    batch_size (`int`): Defaults to 16.
    add_start_token (`bool`): Prepend the BOS token so the first word is scored. Defaults to True.
    device (`str`): "cpu", "cuda" or None (CUDA when available).
    max_length (`int`): Truncate texts to this many tokens. Defaults to None.
Returns:
    perplexities (`list` of `float`), mean_perplexity (`float`).
Examples:
    >>> perplexity = evaluate.load("perplexity", module_type="metric")
    >>> perplexity.compute(model_id="gpt2", predictions=["hello world"])["mean_perplexity"] > 1
    True
"""
_CITATION = "Jelinek et al., Perplexity — a measure of the difficulty of speech recognition tasks, 1977."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://en.wikipedia.org/wiki/Perplexity"],
        )

    def _compute(self, predictions, model_id, batch_size=16, add_start_token=True, device=None, max_length=None):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        use_bos = add_start_token and tokenizer.bos_token_id is not None
        limit = max_length - 1 if (use_bos and max_length) else max_length
        enc = tokenizer(
            predictions,
            add_special_tokens=False,
            padding=True,
            truncation=bool(limit),
            max_length=limit,
            return_tensors="pt",
            return_attention_mask=True,
        )
        loss_fct = CrossEntropyLoss(reduction="none")
        ppls = []
        for start in range(0, len(predictions), batch_size):
            ids = enc["input_ids"][start : start + batch_size].to(device)
            mask = enc["attention_mask"][start : start + batch_size].to(device)
            if use_bos:
                bos = torch.full((ids.size(0), 1), tokenizer.bos_token_id, device=device)
                ids = torch.cat([bos, ids], dim=1)
                mask = torch.cat([torch.ones_like(bos), mask], dim=1)
            with torch.no_grad():
                logits = model(ids, attention_mask=mask).logits
            shift_logits = logits[..., :-1, :].contiguous()
            shift_labels = ids[..., 1:].contiguous()
            shift_mask = mask[..., 1:].contiguous().float()
            nll = (loss_fct(shift_logits.transpose(1, 2), shift_labels) * shift_mask).sum(1) / shift_mask.sum(1)
            ppls += torch.exp(nll).tolist()
        return {"perplexities": ppls, "mean_perplexity": float(np.mean(ppls))}
