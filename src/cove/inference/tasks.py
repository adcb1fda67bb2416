"""The tasks, as the worker runs them (torch and transformers; imported only in a worker process).

`Loaded.run_batch(task, items)` answers many requests in one padded forward pass, each item a dict with
``inputs`` and ``parameters``; its answers have the shapes of the Hub's serverless API (what `InferenceClient`
parses). `Loaded.generate` is the token loop of text generation, streamed token by token.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad input: answered 400."""


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return 0.0
    return x


def _texts(inputs: Any) -> tuple[list[str], bool]:
    """(texts, single): a string or a list of strings."""
    if isinstance(inputs, str):
        return [inputs], True
    if isinstance(inputs, list) and inputs and all(isinstance(t, str) for t in inputs):
        return list(inputs), False
    raise InputError("`inputs` must be a string or a non-empty list of strings")


def _groups(items: list[dict]) -> dict[str, list[int]]:
    """Indices of the items grouped by their parameters (one pipeline call per group)."""
    out: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        out.setdefault(json.dumps(it.get("parameters") or {}, sort_keys=True), []).append(i)
    return out


def _per_input(res: Any, n: int) -> list:
    """A pipeline's answer, one entry per input (with one input some pipelines leave out the outer list)."""
    if n == 1 and (not res or isinstance(res[0], dict)):
        return [res]
    return list(res)


def _gguf_file(path: Path) -> str | None:
    if (path / "config.json").is_file():
        return None
    ggufs = sorted(path.rglob("*.gguf"), key=lambda p: p.stat().st_size)
    return str(ggufs[0].relative_to(path)) if ggufs else None


class Loaded:
    """One model, loaded for one kind of task (`cove.inference.LOAD_KIND`)."""

    def __init__(self, path: str, kind: str) -> None:
        import torch
        import transformers as tf

        self.torch = torch
        self.path = Path(path)
        self.kind = kind
        gguf = _gguf_file(self.path)
        kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        self.tokenizer = tf.AutoTokenizer.from_pretrained(path, **kw)
        cls = {
            "sequence-classification": tf.AutoModelForSequenceClassification,
            "token-classification": tf.AutoModelForTokenClassification,
            "masked-lm": tf.AutoModelForMaskedLM,
            "embedding": tf.AutoModel,
            "question-answering": tf.AutoModelForQuestionAnswering,
            "causal-lm": tf.AutoModelForCausalLM,
            "seq2seq": tf.AutoModelForSeq2SeqLM,
        }[kind]
        self.model = cls.from_pretrained(path, **kw).eval()
        self.pipes: dict[str, Any] = {}
        self.pooling, self.normalize = self._sentence_transformers()
        if kind in ("causal-lm", "seq2seq") and self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _pipe(self, task: str):  # noqa: ANN202
        if task not in self.pipes:
            from transformers import pipeline

            self.pipes[task] = pipeline(task, model=self.model, tokenizer=self.tokenizer, device="cpu")
        return self.pipes[task]

    def _sentence_transformers(self) -> tuple[str | None, bool]:
        """(pooling, normalize) from a sentence-transformers layout (`modules.json`), else (None, False)."""
        try:
            modules = json.loads((self.path / "modules.json").read_text())
        except (OSError, ValueError):
            return None, False
        pooling, normalize = "mean", False
        for m in modules if isinstance(modules, list) else []:
            kind = str(m.get("type", ""))
            if kind.endswith("Pooling"):
                try:
                    cfg = json.loads((self.path / m.get("path", "") / "config.json").read_text())
                except (OSError, ValueError):
                    cfg = {}
                if cfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif cfg.get("pooling_mode_max_tokens"):
                    pooling = "max"
            elif kind.endswith("Normalize"):
                normalize = True
        return pooling, normalize

    # -- batched tasks ----------------------------------------------------------------------------------
    def run_batch(self, task: str, items: list[dict]) -> list[Any]:
        """One answer per item: its result, or an `Exception` (that item's error only)."""
        fn: Callable[[list[dict]], list[Any]] = getattr(self, "_" + task.replace("-", "_"))
        out: list[Any] = [None] * len(items)
        for idx in _groups(items).values():
            group = [items[i] for i in idx]
            try:
                answers = fn(group)
            except InputError as exc:
                answers = [exc] * len(group)
            except Exception:  # one bad item must not fail the others: run them one by one
                answers = []
                for it in group:
                    try:
                        answers.append(fn([it])[0])
                    except Exception as exc:  # noqa: BLE001 - the item's own error, sent back to its caller
                        answers.append(exc)
            for i, a in zip(idx, answers, strict=True):
                out[i] = a if isinstance(a, Exception) else _jsonable(a)
        return out

    def _flat(self, items: list[dict]) -> tuple[list[str], list[tuple[int, int, bool]]]:
        texts: list[str] = []
        spans = []
        for it in items:
            t, single = _texts(it.get("inputs"))
            spans.append((len(texts), len(texts) + len(t), single))
            texts.extend(t)
        return texts, spans

    def _text_classification(self, items: list[dict]) -> list[Any]:
        """The text-classification pipeline's answer (all labels, best first, `top_k`, `function_to_apply`), with
        the whole batch tokenized at once and one forward pass: the pipeline tokenizes item by item."""
        params = items[0].get("parameters") or {}
        texts, spans = self._flat(items)
        top_k = params.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise InputError("`top_k` must be a positive integer")
        fn = str(params.get("function_to_apply") or self._default_function()).lower()
        if fn not in ("softmax", "sigmoid", "none"):
            raise InputError("`function_to_apply` must be softmax, sigmoid or none")
        torch = self.torch
        with torch.inference_mode():
            if self.tokenizer.pad_token is None and len(texts) > 1:  # nothing to pad with: one by one
                logits = torch.cat([self.model(**self.tokenizer(t, truncation=True, return_tensors="pt")).logits
                                    for t in texts])
            else:
                enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
                logits = self.model(**enc).logits
            logits = logits.float()
            scores = logits.softmax(-1) if fn == "softmax" else logits.sigmoid() if fn == "sigmoid" else logits
        labels = self.model.config.id2label
        res = []
        for row in scores.tolist():
            ranked = sorted(({"label": labels[i], "score": v} for i, v in enumerate(row)), key=lambda d: -d["score"])
            res.append(ranked[:top_k] if top_k is not None else ranked)
        return [res[a:b] for a, b, _ in spans]  # a string's answer is a list of one list, as on the Hub

    def _default_function(self) -> str:
        """What the pipeline applies to the logits when not told (its `postprocess`)."""
        cfg = self.model.config
        if cfg.problem_type == "regression":
            return "none"
        if cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def _token_classification(self, items: list[dict]) -> list[Any]:
        params = items[0].get("parameters") or {}
        texts, spans = self._flat(items)
        kw: dict[str, Any] = {"aggregation_strategy": params.get("aggregation_strategy") or "simple"}
        if params.get("ignore_labels") is not None:
            kw["ignore_labels"] = params["ignore_labels"]
        try:
            res = self._pipe("token-classification")(texts, batch_size=len(texts), **kw)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        res = _per_input(res, len(texts))
        return [res[a] if single else res[a:b] for a, b, single in spans]

    def _fill_mask(self, items: list[dict]) -> list[Any]:
        params = items[0].get("parameters") or {}
        texts, spans = self._flat(items)
        mask = self.tokenizer.mask_token or ""
        for t in texts:
            if t.count(mask) != 1:
                raise InputError(f"Each input must hold the mask token {mask} exactly once")
        kw = {k: params[k] for k in ("top_k", "targets") if params.get(k) is not None}
        res = self._pipe("fill-mask")(texts, batch_size=len(texts), **kw)
        res = _per_input(res, len(texts))
        return [res[a] if single else res[a:b] for a, b, single in spans]

    def _zero_shot_classification(self, items: list[dict]) -> list[Any]:
        params = items[0].get("parameters") or {}
        labels = params.get("candidate_labels")
        if isinstance(labels, str):
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        if not labels or not all(isinstance(x, str) for x in labels):
            raise InputError("`parameters.candidate_labels` must be a non-empty list of labels")
        texts, spans = self._flat(items)
        kw = {"multi_label": bool(params.get("multi_label"))}
        if params.get("hypothesis_template"):
            kw["hypothesis_template"] = params["hypothesis_template"]
        try:
            res = self._pipe("zero-shot-classification")(texts, candidate_labels=labels, batch_size=8, **kw)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        res = res if isinstance(res, list) else [res]
        res = [[{"label": lab, "score": s} for lab, s in zip(r["labels"], r["scores"], strict=True)] for r in res]
        return [res[a] if single else res[a:b] for a, b, single in spans]

    def _encode(self, texts: list[str], *, pooled: bool, normalize: bool, truncate: bool = True) -> list[Any]:
        torch = self.torch
        limit = min(getattr(self.tokenizer, "model_max_length", 512) or 512, 8192)
        enc = self.tokenizer(texts, padding=True, truncation=truncate, max_length=limit, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"]
        if not pooled:
            return [hidden[i, : int(mask[i].sum())].tolist() for i in range(len(texts))]
        if self.pooling == "cls":
            vec = hidden[:, 0]
        elif self.pooling == "max":
            vec = hidden.masked_fill(mask.unsqueeze(-1) == 0, -1e9).max(dim=1).values
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if normalize:
            vec = torch.nn.functional.normalize(vec, p=2, dim=1)
        return vec.tolist()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Sentence embeddings (pooled; normalized when the model says so), for `/v1/embeddings`."""
        return self._encode(texts, pooled=True, normalize=self.normalize)

    def _feature_extraction(self, items: list[dict]) -> list[Any]:
        params = items[0].get("parameters") or {}
        texts, spans = self._flat(items)
        pooled = self.pooling is not None
        vecs = self._encode(texts, pooled=pooled, normalize=bool(params.get("normalize", self.normalize)),
                            truncate=params.get("truncate") is not False)
        return [vecs[a] if single else vecs[a:b] for a, b, single in spans]

    def _sentence_similarity(self, items: list[dict]) -> list[Any]:
        texts: list[str] = []
        spans = []
        for it in items:
            inp = it.get("inputs")
            if not isinstance(inp, dict) or not isinstance(inp.get("source_sentence"), str) or not isinstance(
                    inp.get("sentences"), list) or not all(isinstance(s, str) for s in inp["sentences"]):
                raise InputError("`inputs` must be {\"source_sentence\": str, \"sentences\": [str, ...]}")
            spans.append((len(texts), len(texts) + 1 + len(inp["sentences"])))
            texts += [inp["source_sentence"], *inp["sentences"]]
        vecs = self.torch.tensor(self._encode(texts, pooled=True, normalize=True))
        return [(vecs[a + 1: b] @ vecs[a]).tolist() for a, b in spans]

    def _question_answering(self, items: list[dict]) -> list[Any]:
        """Extractive QA from the start/end logits: the best span of the context (over overlapping windows)."""
        torch = self.torch
        params = items[0].get("parameters") or {}
        qs, cs = [], []
        for it in items:
            inp = it.get("inputs")
            if not isinstance(inp, dict) or not isinstance(inp.get("question"), str) or not isinstance(
                    inp.get("context"), str) or not inp["question"].strip():
                raise InputError("`inputs` must be {\"question\": str, \"context\": str}")
            qs.append(inp["question"])
            cs.append(inp["context"])
        top_k = int(params.get("top_k") or 1)
        max_len = int(params.get("max_answer_len") or 15)
        seq = min(int(params.get("max_seq_len") or 384), getattr(self.tokenizer, "model_max_length", 512) or 512)
        stride = min(int(params.get("doc_stride") or 128), seq // 2)
        enc = self.tokenizer(qs, cs, truncation="only_second", max_length=seq, stride=stride, padding=True,
                             return_overflowing_tokens=True, return_offsets_mapping=True, return_tensors="pt")
        owner = enc.pop("overflow_to_sample_mapping").tolist()
        offsets = enc.pop("offset_mapping").tolist()
        with torch.inference_mode():
            out = self.model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask",
                                                                     "token_type_ids")})
        start = torch.log_softmax(out.start_logits, -1)
        end = torch.log_softmax(out.end_logits, -1)
        cands: list[list[tuple[float, int, int]]] = [[] for _ in items]
        null: list[float] = [-math.inf] * len(items)
        for f, i in enumerate(owner):
            ctx = [s == 1 for s in enc.sequence_ids(f)]
            null[i] = max(null[i], float(start[f, 0] + end[f, 0]))
            s_idx = [j for j, c in enumerate(ctx) if c]
            s_top = sorted(s_idx, key=lambda j: -float(start[f, j]))[:20]
            e_top = sorted(s_idx, key=lambda j: -float(end[f, j]))[:20]
            for a in s_top:
                for b in e_top:
                    if b < a or b - a + 1 > max_len:
                        continue
                    cands[i].append((float(start[f, a] + end[f, b]), offsets[f][a][0], offsets[f][b][1]))
        answers = []
        for i, c in enumerate(cands):
            best = sorted(set(c), key=lambda x: -x[0])[:top_k]
            res = [{"answer": cs[i][s:e], "score": math.exp(sc), "start": s, "end": e} for sc, s, e in best]
            if params.get("handle_impossible_answer") and (not best or null[i] > best[0][0]):
                res = [{"answer": "", "score": math.exp(null[i]), "start": 0, "end": 0}] + res[: top_k - 1]
            if not res:
                res = [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
            answers.append(res[0] if top_k == 1 else res)
        return answers

    def _seq2seq(self, items: list[dict], key: str) -> list[Any]:
        params = items[0].get("parameters") or {}
        texts, spans = self._flat(items)
        gen = dict(params.get("generate_parameters") or {})
        gen.setdefault("max_new_tokens", int(params.get("max_new_tokens") or params.get("max_length") or 64))
        gen = {k: v for k, v in gen.items() if k in ("max_new_tokens", "min_new_tokens", "num_beams", "do_sample",
                                                       "temperature", "top_p", "top_k", "repetition_penalty")}
        enc = self.tokenizer(texts, padding=True, truncation=params.get("truncation") != "do_not_truncate",
                             return_tensors="pt")
        with self.torch.inference_mode():
            ids = self.model.generate(**enc, **gen)
        outs = self.tokenizer.batch_decode(ids, skip_special_tokens=True,
                                           clean_up_tokenization_spaces=bool(params.get("clean_up_tokenization_spaces",
                                                                                        True)))
        res = [{key: o} for o in outs]
        return [res[a:b] for a, b, _ in spans]  # a list, as on the Hub (the client takes [0])

    def _summarization(self, items: list[dict]) -> list[Any]:
        return self._seq2seq(items, "summary_text")

    def _translation(self, items: list[dict]) -> list[Any]:
        return self._seq2seq(items, "translation_text")

    def _text2text_generation(self, items: list[dict]) -> list[Any]:
        return self._seq2seq(items, "generated_text")

    # -- generation ---------------------------------------------------------------------------------------
    def chat_prompt(self, messages: list[dict]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError("This model has no chat template (tokenizer_config.json `chat_template`)")
        try:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - the template's own error (a role it refuses, ...)
            raise InputError(f"The chat template refused the messages: {exc}") from exc

    def generate(self, prompt: str, p: dict, max_tokens_cap: int) -> Iterator[dict]:
        """Yield {"token": {...}} per new token, then {"done": {...}} (TGI's fields: finish_reason, details)."""
        torch = self.torch
        from transformers import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        tok = self.tokenizer
        ids = tok(prompt, return_tensors="pt").input_ids
        if ids.shape[1] == 0 and tok.bos_token_id is not None:
            ids = torch.tensor([[tok.bos_token_id]])
        n_max = min(int(p.get("max_new_tokens") or 20), max_tokens_cap)
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None)
        if limit:
            if ids.shape[1] >= limit:
                raise InputError(f"The input is {ids.shape[1]} tokens long; this model takes at most {limit}")
            n_max = min(n_max, limit - ids.shape[1])
        temp = p.get("temperature")
        sample = bool(p.get("do_sample")) or (temp is not None and float(temp) > 0) or p.get("top_p") is not None \
            or p.get("top_k") is not None
        if temp is not None and float(temp) == 0:
            sample = False
        procs = LogitsProcessorList()
        if p.get("repetition_penalty"):
            procs.append(RepetitionPenaltyLogitsProcessor(float(p["repetition_penalty"])))
        if sample:
            if temp is not None and float(temp) != 1.0:
                procs.append(TemperatureLogitsWarper(float(temp)))
            if p.get("top_k"):
                procs.append(TopKLogitsWarper(int(p["top_k"])))
            if p.get("top_p") is not None and float(p["top_p"]) < 1.0:
                procs.append(TopPLogitsWarper(float(p["top_p"])))
        seed = p.get("seed")
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        stops = [s for s in (p.get("stop") or []) if isinstance(s, str) and s]
        eos = self.model.config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos.add(tok.eos_token_id)
        new: list[int] = []
        text = ""
        finish = "length"
        past = None
        cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        cur = ids
        seq = ids
        with torch.inference_mode():
            for _ in range(n_max):
                out = self.model(input_ids=cur, use_cache=True, **{cache_arg: past})
                past = getattr(out, "cache", None) if cache_arg == "cache" else out.past_key_values
                raw = out.logits[:, -1, :].float()
                logp = torch.log_softmax(raw, -1)
                scores = procs(seq, raw) if len(procs) else raw
                if sample:
                    nxt = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=gen)[0, 0])
                else:
                    nxt = int(scores.argmax(-1)[0])
                seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
                cur = torch.tensor([[nxt]])
                special = nxt in eos or nxt in tok.all_special_ids
                new.append(nxt)
                full = tok.decode(new, skip_special_tokens=True)
                piece, text = full[len(text):], full
                token = {"id": nxt, "text": "" if special else piece, "logprob": float(logp[0, nxt]),
                         "special": special}
                if nxt in eos:
                    finish = "eos_token"
                    yield {"token": token}
                    break
                hit = next((s for s in stops if s in text), None)
                yield {"token": token}
                if hit is not None:
                    finish = "stop_sequence"
                    break
        yield {"done": {"generated_text": text, "finish_reason": finish, "generated_tokens": len(new),
                        "input_length": int(ids.shape[1]), "seed": seed}}
