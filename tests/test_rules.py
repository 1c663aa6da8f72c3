"""The rule-based adapter: spec parsing, token resolution, and each rule's exact effect on logits."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from implicit_if.rules import (
    STUDY_TOKEN_SHIFTS,
    MissingTokenWarning,
    ResolvedTokens,
    RuleConfig,
    TokenShift,
    build_rules,
    parse_spec,
)
from implicit_if.rules.core import NO_TOKEN, apply_rules, eos_bonus, rule_offsets, used_token_mask
from implicit_if.rules.hf import RulesLogitsProcessor, mask_left_padding, rule_continuation_logprobs
from implicit_if.rules.tokens import BYTE_LEVEL, PLAIN, SENTENCEPIECE, resolve_shifts, vocabulary_convention

V = 12  # synthetic vocabulary size
EOS = 1
PAD = 0
TOKENS = ResolvedTokens(shift_ids=(3, 7), shift_values=(-5.0, 1.0), eos_id=EOS, pad_id=PAD, convention=PLAIN)


def config(rules: str = "eos,uniform,diversity", **options) -> RuleConfig:
    return build_rules(rules, **options).config


# -- the spec and options ----------------------------------------------------------------------


def test_parse_spec_orders_names_and_knows_none_and_all():
    assert parse_spec("diversity, eos") == ("eos", "diversity")
    assert parse_spec("none") == () and parse_spec("") == () and parse_spec("off") == ()
    assert parse_spec("all") == ("eos", "uniform", "diversity")


def test_unknown_rule_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown rule\(s\) 'eso'.*eos,uniform,diversity"):
        parse_spec("eso,uniform")


def test_build_rules_none_gives_no_adapter_but_still_checks_options():
    assert build_rules("none") is None
    with pytest.raises(ValueError, match="unknown rule option.*eos_scal.*valid options are"):
        build_rules("none", eos_scal=3)


def test_build_rules_switches_each_rule_for_ablations():
    only_eos = build_rules("eos")
    assert only_eos.names == ("eos",) and only_eos.spec == "eos"
    assert (only_eos.config.uniform, only_eos.config.diversity) == (False, False)
    assert build_rules("uniform,diversity").names == ("uniform", "diversity")


def test_options_override_constants_and_accept_strings_from_command_lines():
    rules = build_rules("all", eos_scale="10", eos_horizon="100", count_instruction_tokens="true", diversity_penalty=2)
    assert rules.config.eos_scale == 10.0 and rules.config.eos_horizon == 100
    assert rules.config.count_instruction_tokens is True and rules.config.diversity_penalty == 2.0
    assert rules.as_record() == {
        "rules": "eos,uniform,diversity",
        "rule_options": {
            "eos_scale": 10.0,
            "eos_horizon": 100,
            "diversity_penalty": 2.0,
            "count_instruction_tokens": True,
        },
    }
    with pytest.raises(ValueError, match="count_instruction_tokens must be true or false"):
        build_rules("all", count_instruction_tokens="maybe")
    with pytest.raises(ValueError, match="eos_horizon must be a whole number"):
        build_rules("all", eos_horizon="2.5")
    with pytest.raises(ValueError, match="not options"):
        build_rules("all", eos=False)


def test_study_defaults():
    c = RuleConfig()
    assert (c.eos_scale, c.eos_horizon, c.eos_hold_after_horizon) == (15.0, 250, False)
    assert (c.diversity_penalty, c.count_instruction_tokens) == (1.5, False)
    shifts = {s.text: s.shift for s in STUDY_TOKEN_SHIFTS}
    assert shifts["I"] == -5 and shifts["should"] == -6 and shifts["We"] == -3 and shifts["What"] == -5
    assert shifts["<"] == shifts["|"] == -4
    assert all(shifts[m] == 1 for m in ("-", "*", "#", "##", "  ", "\n", "!"))


def test_token_shifts_from_mapping_or_json_and_config_round_trip():
    a = build_rules("uniform", token_shifts={"I": -2, "Sure": 3}).config
    b = build_rules("uniform", token_shifts=json.dumps([["I", -2], ["Sure", 3]])).config
    assert a.token_shifts == b.token_shifts == (TokenShift("I", -2.0), TokenShift("Sure", 3.0))
    full = config(count_instruction_tokens=True)
    assert RuleConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    with pytest.raises(ValueError, match="token_shifts must be JSON"):
        build_rules("uniform", token_shifts="I=-2")
    with pytest.raises(ValueError, match="forms must be"):
        TokenShift("I", -1, ("leading",))


def test_vllm_options_name_the_processor_and_carry_the_config_per_request():
    rules = build_rules("eos,diversity", eos_scale=5)
    options = rules.vllm_options()
    assert options["logits_processors"] == ["implicit_if.rules.vllm_processor:RulesLogitsProcessor"]
    carried = options["sampling_extra_args"]["implicit_if_rules"]
    json.dumps(carried)  # vLLM checks extra_args are plain data
    assert RuleConfig.from_dict(carried) == rules.config


# -- rule 1: the EOS schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "bonus"),
    [(0, 0.0), (1, 0.06), (50, 3.0), (125, 7.5), (200, 12.0), (249, 14.94), (250, 0.0), (400, 0.0)],
)
def test_eos_schedule_matches_the_study(length, bonus):
    assert eos_bonus(torch.tensor([length]), RuleConfig()).item() == pytest.approx(bonus, abs=1e-5)


def test_eos_schedule_can_hold_after_the_horizon_and_take_other_constants():
    held = eos_bonus(torch.tensor([249, 250, 1000]), RuleConfig(eos_hold_after_horizon=True))
    assert held.tolist() == pytest.approx([14.94, 15.0, 15.0])
    custom = eos_bonus(torch.tensor([0, 10, 20]), RuleConfig(eos_scale=4.0, eos_horizon=20))
    assert custom.tolist() == pytest.approx([0.0, 2.0, 0.0])


# -- token resolution by text --------------------------------------------------------------------

SP_VOCAB = {
    "<pad>": 0,
    "<eos>": 1,
    "▁I": 2,
    "I": 3,
    "▁should": 4,
    "\n": 5,
    "<0x0A>": 6,
    "▁▁": 7,
    "▁the": 8,
    "<0x21>": 9,
}
BL_VOCAB = {"<|endoftext|>": 0, "ĠI": 1, "I": 2, "Ġshould": 3, "Ċ": 4, "ĠĠ": 5, "Ġthe": 6, "!": 7}


def test_vocabulary_family_is_detected_from_the_pieces():
    assert vocabulary_convention(SP_VOCAB) == SENTENCEPIECE
    assert vocabulary_convention(BL_VOCAB) == BYTE_LEVEL
    assert vocabulary_convention({"a": 0, "b": 1}) == PLAIN


def test_sentencepiece_spellings_prefer_the_character_over_byte_fallback():
    shifts = (
        TokenShift("I", -5),
        TokenShift("should", -6, ("spaced",)),
        TokenShift("\n", 1, ("bare",)),
        TokenShift("  ", 1, ("bare",)),
        TokenShift("!", 1, ("bare",)),
    )
    ids, matched, missing = resolve_shifts(SP_VOCAB, shifts)
    assert ids == {2: -5.0, 3: -5.0, 4: -6.0, 5: 1.0, 7: 1.0, 9: 1.0}  # "!" only exists as byte fallback
    assert matched["\n"] == ("\n",) and matched["!"] == ("<0x21>",)
    assert missing == []


def test_byte_level_spellings_map_space_and_newline_bytes():
    shifts = (
        TokenShift("I", -5),
        TokenShift("should", -6, ("spaced",)),
        TokenShift("\n", 1, ("bare",)),
        TokenShift("  ", 1, ("bare",)),
    )
    ids, _, missing = resolve_shifts(BL_VOCAB, shifts)
    assert ids == {1: -5.0, 2: -5.0, 3: -6.0, 4: 1.0, 5: 1.0} and missing == []


def test_missing_tokens_are_skipped_with_a_warning():
    class Tok:
        eos_token_id, pad_token_id = 0, 0

        def get_vocab(self):
            return BL_VOCAB

    rules = build_rules("uniform", token_shifts=[["I", -5], ["Sure", 4], ["##", 1, ["bare"]]])
    with pytest.warns(MissingTokenWarning, match=r"'Sure' \(bare\), 'Sure' \(spaced\), '##' \(bare\)"):
        tokens = rules.resolve(Tok())
    assert tokens.shifts() == {1: -5.0, 2: -5.0}
    assert tokens.missing == ("'Sure' (bare)", "'Sure' (spaced)", "'##' (bare)")


def test_two_names_on_one_token_add_up():
    ids, _, _ = resolve_shifts(BL_VOCAB, (TokenShift("I", -5, ("bare",)), TokenShift("I", 2, ("bare",))))
    assert ids == {2: -3.0}


# -- exact effect of each rule on synthetic logits -----------------------------------------------


def test_uniform_rule_adds_exactly_the_shifts_and_nothing_else():
    scores = torch.randn(2, V)
    out = apply_rules(scores, torch.tensor([3, 300]), torch.tensor([[4, 4], [5, 6]]), config("uniform"), TOKENS)
    expected = scores.clone()
    expected[:, 3] -= 5
    expected[:, 7] += 1
    assert torch.equal(out, expected)


def test_eos_rule_adds_each_rows_bonus_to_eos_only():
    scores = torch.zeros(3, V)
    out = apply_rules(scores, torch.tensor([0, 125, 250]), torch.empty(3, 0, dtype=torch.long), config("eos"), TOKENS)
    expected = torch.zeros(3, V)
    expected[:, EOS] = torch.tensor([0.0, 7.5, 0.0])
    assert torch.equal(out, expected)


def test_diversity_rule_penalises_each_used_token_once_and_ignores_fillers():
    scores = torch.zeros(2, V)
    used = torch.tensor([[4, 4, 4, 9], [2, NO_TOKEN, NO_TOKEN, 99]])  # 99 is outside the vocabulary
    out = apply_rules(scores, torch.tensor([4, 1]), used, config("diversity"), TOKENS)
    expected = torch.zeros(2, V)
    expected[0, [4, 9]] = -1.5
    expected[1, 2] = -1.5
    assert torch.equal(out, expected)
    assert used_token_mask(used, V).sum().item() == 3


def test_all_rules_add_up_and_leave_the_input_untouched():
    scores = torch.randn(1, V)
    before = scores.clone()
    out = apply_rules(scores, torch.tensor([50]), torch.tensor([[3, 5]]), config(), TOKENS)
    expected = before.clone()
    expected[0, 3] += -5 - 1.5  # a shifted token that was also used
    expected[0, 7] += 1
    expected[0, 5] -= 1.5
    expected[0, EOS] += 3.0
    assert torch.allclose(out, expected) and torch.equal(scores, before)


def test_offsets_without_rules_enabled_are_zero():
    off = rule_offsets(
        (2, V), torch.tensor([10, 10]), torch.tensor([[3], [4]]), RuleConfig(False, False, False), TOKENS
    )
    assert torch.count_nonzero(off) == 0


# -- the transformers processor on a left-padded batch ------------------------------------------


def test_processor_counts_only_response_tokens_by_default_and_never_padding():
    # Two prompts left-padded to width 4 (PAD=0); two tokens generated so far.
    input_ids = torch.tensor([[PAD, PAD, 5, 6, 8, 8], [2, 3, 5, 6, 9, 10]])
    proc = RulesLogitsProcessor(config("diversity,eos"), TOKENS, prompt_width=4)
    out = proc(input_ids, torch.zeros(2, V))
    expected = torch.zeros(2, V)
    expected[:, EOS] = 15 * 2 / 250
    expected[0, 8] -= 1.5
    expected[1, [9, 10]] -= 1.5
    assert torch.allclose(out, expected)


def test_processor_can_count_the_instruction_like_the_study():
    input_ids = torch.tensor([[PAD, PAD, 5, 6, 8], [2, 3, 5, 6, 9]])
    proc = RulesLogitsProcessor(config("diversity", count_instruction_tokens=True), TOKENS, prompt_width=4)
    out = proc(input_ids, torch.zeros(2, V))
    expected = torch.zeros(2, V)
    expected[0, [5, 6, 8]] = -1.5  # the padding (id 0) is not counted
    expected[1, [2, 3, 5, 6, 9]] = -1.5
    assert torch.equal(out, expected)
    assert mask_left_padding(torch.tensor([[0, 0, 4, 0]]), 0).tolist() == [[NO_TOKEN, NO_TOKEN, 4, 0]]


def test_processor_rejects_a_wrong_prompt_width():
    proc = RulesLogitsProcessor(config(), TOKENS, prompt_width=9)
    with pytest.raises(ValueError, match="prompt width is 9"):
        proc(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, V))


def test_scoring_path_matches_step_by_step_processing():
    """Teacher-forced scoring under the rules = the processor applied at each step, renormalised."""
    torch.manual_seed(0)
    context, continuation = [2, 3, 5], [8, 8, 3, 9, EOS]
    logits = torch.randn(len(continuation), V)
    cfg = config(count_instruction_tokens=True)
    got, greedy = rule_continuation_logprobs(logits, context, continuation, cfg, TOKENS, chunk=2)
    expected = []
    for j, token in enumerate(continuation):
        proc = RulesLogitsProcessor(cfg, TOKENS, prompt_width=len(context))
        adjusted = proc(torch.tensor([context + continuation[:j]]), logits[j : j + 1])
        expected.append(torch.log_softmax(adjusted, dim=-1)[0, token].item())
    assert got == pytest.approx(expected, abs=1e-6)
    assert isinstance(greedy, bool)


# -- a real tokenizer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def test_real_byte_level_tokenizer_resolves_every_study_token(smollm2_tokenizer):
    tok = smollm2_tokenizer
    rules = build_rules("all")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingTokenWarning)
        tokens = rules.resolve(tok)
    assert tokens.convention == BYTE_LEVEL and tokens.eos_id == tok.eos_token_id
    # Each shifted id decodes to its name, bare or with a leading space.
    by_text = {s.text: s for s in STUDY_TOKEN_SHIFTS}
    for text, pieces in tokens.matched.items():
        assert pieces, text
        for piece in pieces:
            surface = tok.convert_tokens_to_string([piece])
            assert surface in {text, " " + text}, (text, piece, surface)
            assert tokens.shifts()[tok.convert_tokens_to_ids(piece)] == by_text[text].shift
    # The words the study discourages, as the tokenizer spells them mid-sentence.
    for word, shift in ((" I", -5.0), (" should", -6.0), (" What", -5.0), (" We", -3.0)):
        (token_id,) = tok(word, add_special_tokens=False)["input_ids"]
        assert tokens.shifts()[token_id] == shift


def test_real_tokenizer_processor_changes_exactly_the_expected_logits(smollm2_tokenizer):
    tok = smollm2_tokenizer
    rules = build_rules("all")
    prompt = tok("<|user|>\nName a color.\n<|assistant|>\n")["input_ids"]
    response = tok("Blue is a color", add_special_tokens=False)["input_ids"]
    (processor,) = rules.hf_logits_processor_factory(tok, len(prompt))
    vocab = len(tok)
    scores = torch.zeros(1, vocab)
    out = processor(torch.tensor([prompt + response]), scores)
    tokens = rules.resolve(tok)
    expected = torch.zeros(vocab)
    for token_id, shift in tokens.shifts().items():
        expected[token_id] += shift
    expected[tok.eos_token_id] += 15 * len(response) / 250
    for token_id in set(response):
        expected[token_id] -= 1.5
    assert torch.allclose(out[0], expected)
    assert rules.resolve(tok) is tokens  # resolved once per tokenizer
