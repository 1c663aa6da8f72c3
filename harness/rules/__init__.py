"""The study's rule-based adapter: three hand-written rules combined with any base model.

`build_rules("eos,uniform,diversity")` gives a RuleSet (or None for "none") that plugs into
the hf backend (`hf_logits_processor_factory`), the vllm backend (`vllm_options()`) and the
lm-eval model `implicit_if_hf` (`rules=...`). Tokens are named by text and resolved for each
tokenizer, so the rules work for any model, not only Llama-2. Import-light: torch and
transformers load only when a processor is built.
"""

from .config import NO_RULES, RULE_NAMES, STUDY_TOKEN_SHIFTS, RuleConfig, TokenShift, option_names, parse_spec
from .ruleset import RuleSet, build_rules
from .tokens import MissingTokenWarning, ResolvedTokens, resolve_tokens

__all__ = [
    "NO_RULES",
    "RULE_NAMES",
    "STUDY_TOKEN_SHIFTS",
    "MissingTokenWarning",
    "ResolvedTokens",
    "RuleConfig",
    "RuleSet",
    "TokenShift",
    "build_rules",
    "option_names",
    "parse_spec",
    "resolve_tokens",
]
