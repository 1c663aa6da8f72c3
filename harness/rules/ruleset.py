"""`build_rules`: the one entry point other stages use, and what it hands to each backend."""

from __future__ import annotations

import weakref
from typing import Any

from .config import RULE_NAMES, RuleConfig, parse_spec, with_options
from .tokens import ResolvedTokens, resolve_tokens

VLLM_PROCESSOR = "implicit_if.rules.vllm_processor:RulesLogitsProcessor"
VLLM_EXTRA_ARGS_KEY = "implicit_if_rules"


class RuleSet:
    """The enabled rules with their constants, ready to attach to a backend."""

    def __init__(self, config: RuleConfig) -> None:
        if not config.enabled:
            raise ValueError("a RuleSet needs at least one rule: use build_rules('none') to get no adapter")
        self.config = config
        self._resolved: weakref.WeakKeyDictionary[Any, ResolvedTokens] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        changed = self.config.changed_options()
        return f"RuleSet({self.spec!r}{', ' + repr(changed) if changed else ''})"

    @property
    def spec(self) -> str:
        return self.config.spec

    @property
    def names(self) -> tuple[str, ...]:
        return self.config.enabled

    def as_record(self) -> dict[str, Any]:
        """Provenance for output records: the rules and any constant that differs from the study's."""
        return {"rules": self.spec, "rule_options": self.config.changed_options()}

    def resolve(self, tokenizer: Any) -> ResolvedTokens:
        """Token ids for this tokenizer (resolved once per tokenizer object)."""
        try:
            return self._resolved[tokenizer]
        except (KeyError, TypeError):
            pass
        tokens = resolve_tokens(tokenizer, self.config.token_shifts)
        if self.config.eos and tokens.eos_id is None:
            raise ValueError(
                "the eos rule needs a tokenizer with an EOS token and this one has none: "
                "set tokenizer.eos_token, or leave the rule out (e.g. --rules uniform,diversity)"
            )
        try:
            self._resolved[tokenizer] = tokens
        except TypeError:  # not weak-referenceable: resolve again next time
            pass
        return tokens

    def hf_logits_processor_factory(self, tokenizer: Any, prompt_width: int) -> list:
        """For HFBackend(logits_processor_factory=...): processors for one left-padded batch."""
        from .hf import RulesLogitsProcessor

        return [RulesLogitsProcessor(self.config, self.resolve(tokenizer), prompt_width)]

    def vllm_options(self) -> dict[str, Any]:
        """Keyword arguments for VLLMBackend: the processor class (by name) and per-request settings."""
        return {
            "logits_processors": [VLLM_PROCESSOR],
            "sampling_extra_args": {VLLM_EXTRA_ARGS_KEY: self.config.to_dict()},
        }


def build_rules(spec: str, **options: Any) -> RuleSet | None:
    """Rules from a spec such as "eos,uniform,diversity" ("none" gives None); options override constants.

    Example: build_rules("eos,uniform,diversity", count_instruction_tokens=True) reproduces the
    study's repetition penalty, which also counted the instruction's tokens.
    """
    clashing = sorted(set(options) & set(RULE_NAMES))
    if clashing:
        raise ValueError(f"choose rules with the spec string, not options ({', '.join(clashing)})")
    enabled = parse_spec(spec)
    config = with_options(RuleConfig(), **options)  # validates options even when no rule is on
    if not enabled:
        return None
    config = with_options(config, **{name: name in enabled for name in RULE_NAMES})
    return RuleSet(config)
