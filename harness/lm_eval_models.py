"""lm-eval model `implicit_if_hf`: lm-eval's Hugging Face model plus the rule-based adapter.

    lm_eval --model implicit_if_hf \\
        --model_args pretrained=gemma-3-270m,rules=eos+uniform+diversity,device=cpu --tasks implicit_if

`pretrained` also takes the harness's embedded model names. `rules` takes the same names as
`implicit-if generate --rules`, joined by "+" (lm-eval splits model_args on commas) or quoted
(`rules="eos,uniform"`); "none" (the default) is plain lm-eval `hf`. Any rule constant can be
overridden by name, e.g. `count_instruction_tokens=true` or `eos_scale=10`.

Generation applies the rules as a logits processor during batched, KV-cached decoding.
Log-likelihood requests are scored under the same product of experts: at each continuation
position the rules' offsets (response length so far, tokens used so far) are added to the base
model's logits before renormalising.
"""

from __future__ import annotations

from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

from .rules import build_rules, option_names
from .rules.hf import rule_continuation_logprobs

MODEL_NAME = "implicit_if_hf"


def rules_from_model_arg(value: Any) -> str:
    """lm-eval turns 'none' into None and cannot carry commas: accept None, '+' and '|' separators."""
    if value is None or value is False:
        return "none"
    return str(value).replace("+", ",").replace("|", ",")


@register_model(MODEL_NAME)
class ImplicitIfHFLM(HFLM):
    """HFLM with `rules=...`: the study's rule-based adapter on top of any causal LM."""

    def __init__(self, pretrained: Any = None, rules: Any = "none", **kwargs: Any) -> None:
        options = {name: kwargs.pop(name) for name in option_names() if name in kwargs}
        self.rule_set = build_rules(rules_from_model_arg(rules), **options)
        if isinstance(pretrained, str):
            from .models import resolve_model

            pretrained = resolve_model(pretrained)
        super().__init__(pretrained=pretrained, **kwargs)
        if self.rule_set is not None:
            if self.backend != "causal":
                raise ValueError("rules need a decoder-only (causal) model")
            self.rule_set.resolve(self.tokenizer)  # fail early on a tokenizer the rules cannot use

    # -- generation: HFLM left-pads the batch to context.shape[1] ---------------------------------
    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs: Any):
        if self.rule_set is not None:
            from transformers import LogitsProcessorList

            extra = self.rule_set.hf_logits_processor_factory(self.tokenizer, context.shape[1])
            existing = list(generation_kwargs.pop("logits_processor", None) or [])
            generation_kwargs["logits_processor"] = LogitsProcessorList([*existing, *extra])
        return super()._model_generate(context, max_length, stop, **generation_kwargs)

    # -- log-likelihood under base model x rules ----------------------------------------------------
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self.rule_set is None:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        tokens = self.rule_set.resolve(self.tokenizer)
        config = self.rule_set.config
        batch_size = override_bs or (self.batch_size if isinstance(self.batch_size, int) else 1)
        results: list[tuple[float, bool]] = []
        bar = tqdm(total=len(requests), desc="loglikelihood (rules)", disable=disable_tqdm or self.rank != 0)
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            rows, splits = [], []
            for _, context_enc, continuation_enc in chunk:
                window = (list(context_enc) + list(continuation_enc))[-(self.max_length + 1) :]
                n_cont = len(continuation_enc)
                rows.append(window[:-1])
                splits.append((window[: len(window) - n_cont], list(continuation_enc)))
            width = max(len(r) for r in rows)
            batch = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):  # right padding: causal attention never looks ahead at it
                batch[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            logits = self._model_call(batch.to(self.device))
            for i, (request, _, _) in enumerate(chunk):
                context_ids, cont_ids = splits[i]
                end = len(rows[i])
                cont_logits = logits[i, end - len(cont_ids) : end]
                per_token, greedy = rule_continuation_logprobs(cont_logits, context_ids, cont_ids, config, tokens)
                answer = (float(sum(per_token)), greedy)
                results.append(answer)
                if request is not None:
                    self.cache_hook.add_partial("loglikelihood", request, answer)
            bar.update(len(chunk))
        bar.close()
        return results
