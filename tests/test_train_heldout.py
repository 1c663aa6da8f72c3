"""Held-out loss: only records the recipe did not train on, the recipe's masking, the model's own loss."""

from __future__ import annotations

import pytest
import torch

from implicit_if.train.heldout import heldout_examples, heldout_loss
from implicit_if.train.recipes import DataSpec

GSM = DataSpec(dataset="gsm_generated", limit=500, max_length=512, offline=True)


def test_trained_records_are_refused_as_heldout(smollm2_dir: str, offline_env: None) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    with pytest.raises(ValueError, match="data.limit"):
        heldout_examples(GSM, tokenizer, 499, 10)
    assert len(heldout_examples(GSM, tokenizer, 500, None)) == 100  # the 100 held-out problems


@pytest.mark.slow
def test_heldout_loss_is_the_models_own_mean_loss_over_response_tokens(smollm2_dir: str, offline_env: None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    examples = heldout_examples(GSM, tokenizer, 500, 3)
    result = heldout_loss(model, examples, "smollm2")
    total = 0.0
    with torch.no_grad():
        for example in examples:  # transformers' loss with labels: the mean over the unmasked targets
            labels = torch.tensor([example.labels])
            loss = model(input_ids=torch.tensor([example.input_ids]), labels=labels).loss
            total += float(loss) * int((labels[0, 1:] != -100).sum())
    assert result.n_targets == sum(e.n_targets for e in examples)
    assert result.loss == pytest.approx(total / result.n_targets, rel=1e-5)
