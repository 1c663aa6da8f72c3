"""The fast scorer equals the plain one, on small real architectures built from configs.

Small randomly initialised Llama and Gemma 3 models exercise the same code paths as the embedded
models (grouped-query attention, Gemma's sliding-window layers with prompts longer than the
window, final logit soft-capping, tied embeddings) in milliseconds. Weights are scaled up so that
log-probabilities vary a lot between positions and an off-by-one would be caught.
"""

from __future__ import annotations

import types
import warnings

import pytest
import torch

from implicit_if import scoring
from implicit_if.scoring import fast_path_problem, score_token_ids, score_token_ids_fast
from implicit_if.tokenization import tokenize_pair

VOCAB = 300


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def _gemma3(softcap: float | None = 30.0):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        sliding_window=32,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=256,
        final_logit_softcapping=softcap,
        tie_word_embeddings=True,
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).eval()


def _pairs(seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Five prompts (one longer than the small Gemma's window of 32; two of nearly equal length,
    so they share a left-padded batch) scored against responses of 1 to 9 tokens: short pairs
    take the stacked-cache path, long ones the per-prompt path."""
    g = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(3, VOCAB, (n,), generator=g).tolist()

    prompts = [ids(4), ids(11), ids(2), ids(40), ids(10)]
    responses = [ids(n) for n in (1, 5, 9, 3, 2, 7)]
    pairs = [(p, r) for p in prompts for r in responses]
    pairs.insert(3, (ids(5), ids(4)))  # a prompt used once
    return pairs


def _max_gap(a: list[list[float]], b: list[list[float]]) -> float:
    assert [len(x) for x in a] == [len(y) for y in b]
    return max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p, q))


@pytest.mark.parametrize("build", [_llama, _gemma3, lambda: _gemma3(None)], ids=["llama", "gemma3-softcap", "gemma3"])
@pytest.mark.parametrize("batch_size", [1, 4, 16])
def test_fast_equals_plain(build, batch_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build()
    calls = {"_rows_hidden": 0, "_score_group": 0}
    for name in calls:
        original = getattr(scoring, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(scoring, name, counted)
    pairs = _pairs()
    plain = score_token_ids(model, pairs, batch_size=3)
    spread = torch.tensor([x for p in plain for x in p]).std().item()
    assert spread > 0.5, "weights too small for the comparison to mean anything"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fast path must not fall back here
        fast = score_token_ids_fast(model, pairs, batch_size=batch_size)
    assert _max_gap(fast, plain) < 1e-4
    assert calls["_rows_hidden"] > 0
    assert (calls["_score_group"] > 0) == (model.config.model_type == "gemma3_text")  # only a windowed model needs it


def test_gemma_fast_path_applies_soft_capping() -> None:
    capped, uncapped = _gemma3(30.0), _gemma3(None)
    pairs = _pairs()
    # Same weights, different capping: the scores must differ, and each path must track its model.
    assert _max_gap(score_token_ids_fast(capped, pairs), score_token_ids_fast(uncapped, pairs)) > 1e-3
    assert _max_gap(score_token_ids_fast(capped, pairs), score_token_ids(capped, pairs)) < 1e-4


def test_unknown_logit_rescaling_falls_back_with_a_warning() -> None:
    model = _llama()
    model.config.logit_scale = 2.0
    assert "rescales its logits" in fast_path_problem(model)
    pairs = _pairs()
    with pytest.warns(RuntimeWarning, match="using the plain path"):
        result = score_token_ids_fast(model, pairs)
    assert result == score_token_ids(model, pairs)


def test_self_check_catches_a_wrong_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _llama()
    original = scoring._OutputLayer.logprobs
    monkeypatch.setattr(scoring._OutputLayer, "logprobs", lambda self, h, t: original(self, h, t) + 0.01)
    pairs = _pairs()
    with pytest.warns(RuntimeWarning, match="differs from the plain one"):
        result = score_token_ids_fast(model, pairs)
    assert _max_gap(result, score_token_ids(model, pairs)) == 0.0


def test_bfloat16_runs_the_fast_path_close_to_float32() -> None:
    model = _gemma3()
    pairs = _pairs()
    reference = score_token_ids(model, pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bfloat16 noise must not trip the self-check
        half = score_token_ids_fast(model.to(torch.bfloat16), pairs)
    means = [abs(sum(a) / len(a) - sum(b) / len(b)) for a, b in zip(reference, half)]
    assert max(means) < 0.2


def test_bad_pairs_are_named() -> None:
    model = _llama()
    with pytest.raises(ValueError, match="pair 1 has an empty context"):
        score_token_ids_fast(model, [([1, 2], [3]), ([], [4])])
    with pytest.raises(ValueError, match="pair 0 has an empty continuation"):
        score_token_ids(model, [([1, 2], [])])
    assert score_token_ids_fast(model, []) == []


def test_tokenize_pair_follows_the_study(smollm2_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    ctx, cont = tokenize_pair(tok, "<|user|>\nHi\n<|assistant|>\n", "Hello there")
    assert ctx == tok("<|user|>\nHi\n<|assistant|>\n", add_special_tokens=True)["input_ids"]
    assert cont == tok("Hello there", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tokenize_pair(tok, "a", "b", add_eos=False)[1] == tok("b", add_special_tokens=False)["input_ids"]


@pytest.mark.slow  # loading Gemma's 262k-entry tokenizer takes seconds
def test_tokenize_pair_keeps_gemma_bos_on_the_context_only(gemma_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gemma_dir)
    ctx, cont = tokenize_pair(tok, "Question", "Answer")
    assert ctx[0] == tok.bos_token_id and tok.bos_token_id not in cont
    assert cont[-1] == tok.eos_token_id
    ctx_plain, _ = tokenize_pair(tok, "<bos>Question", "Answer", add_special_tokens=False)
    assert ctx_plain.count(tok.bos_token_id) == 1


def test_length_buckets_bound_rows_and_padding() -> None:
    assert scoring.length_buckets([10, 11, 2, 4], max_rows=8) == [[1, 0], [3], [2]]
    lengths = [50, 49, 48, 47, 46, 45, 44, 43, 42, 30, 29, 5]
    buckets = scoring.length_buckets(lengths, max_rows=4)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for bucket in buckets:
        assert len(bucket) <= 4
        width = max(lengths[i] for i in bucket)
        assert 1 - sum(lengths[i] for i in bucket) / (width * len(bucket)) <= scoring.MAX_PADDING_SHARE


def test_self_check_covers_the_per_prompt_path(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _gemma3()
    pairs = _pairs()
    assert not all(scoring._takes_stacked_path(model, pairs))  # the long prompt takes the per-prompt path
    original = scoring._score_group

    def perturbed(model, queue, ctx, conts, members, batch_size):
        class Shifted:  # what the per-prompt path hands to the output layer, slightly off
            def add(self, index, hidden, targets):
                queue.add(index, hidden * 1.01, targets)

        original(model, Shifted(), ctx, conts, members, batch_size)

    monkeypatch.setattr(scoring, "_score_group", perturbed)
    with pytest.warns(RuntimeWarning, match="differs from the plain one"):
        result = score_token_ids_fast(model, pairs)
    assert _max_gap(result, score_token_ids(model, pairs)) < 1e-4


def test_self_check_scores_through_the_models_own_forward() -> None:
    model = _gemma3()
    ctx, cont = [5, 9, 11, 3], [7, 8, 2]
    full = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].float(), dim=-1)
    expected = [full[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)]
    assert scoring._model_logprobs(model, ctx, cont) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_output_layer_blocks_equal_a_full_log_softmax(softcap, monkeypatch: pytest.MonkeyPatch) -> None:
    # Vocabulary blocks of 7 over 50 entries (a partial last block), rows split in uneven chunks,
    # a bias, and targets in every block: the running log-sum-exp must equal the full one.
    monkeypatch.setattr(scoring, "VOCAB_BLOCK_CPU", 7)
    monkeypatch.setattr(scoring, "LOGIT_ROWS_PER_CHUNK", 4)
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=True)
    head.weight.data.mul_(8)
    model = types.SimpleNamespace(
        get_output_embeddings=lambda: head, config=types.SimpleNamespace(final_logit_softcapping=softcap)
    )
    hidden, targets = torch.randn(11, 16), torch.tensor([0, 6, 7, 13, 14, 48, 49, 21, 35, 42, 3])
    with torch.no_grad():
        logits = head(hidden)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        expected = torch.log_softmax(logits, dim=-1)[torch.arange(11), targets]
        got = scoring._OutputLayer(model).logprobs(hidden, targets)
    assert torch.allclose(got, expected, atol=1e-5)
