"""The lm-eval glue of `implicit_if_ranking` and `implicit_if_leak`, without running lm-eval."""

from __future__ import annotations

from pathlib import Path

import pytest
from ranking_fixtures import PAIRS, write_pairs

from implicit_if.leakage import DETECTORS
from implicit_if.ranking import plan_comparisons, scoring_jobs, summarize
from implicit_if.tasks import leak_task, ranking_task


@pytest.fixture(scope="module")
def docs(smollm2_dir: str, tmp_path_factory: pytest.TempPathFactory):
    pairs = write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")
    return ranking_task.load_docs(pretrained=smollm2_dir, pairs=str(pairs), n_pairs=5, distractors=2, seed=1)["test"]


def test_documents_follow_the_shared_plan(docs) -> None:
    jobs = scoring_jobs(plan_comparisons(5, 2, seed=1))
    assert [(d["instruction_id"], d["response_id"]) for d in docs] == [(i, j) for i, j, _ in jobs]
    for doc in docs:
        # The prompt's trailing newline moves to the continuations, as lm-eval would move it.
        assert doc["context"].endswith("<|assistant|>")
        newline, full = doc["choices"]
        assert newline == "\n" and full.startswith("\n") and full.endswith("<|im_end|>")
        assert full[1 : -len("<|im_end|>")] == PAIRS[doc["response_id"]]["response"]
        assert doc["joint_tokenization_matches"] is True and doc["n_tokens"] >= 2


def test_process_results_subtracts_the_newline_and_feeds_the_shared_metric(docs) -> None:
    records = []
    for k, doc in enumerate(docs):
        logprob = -1.0 - k  # any distinct values
        out = ranking_task.process_results(doc, [(-0.25, True), (-0.25 + logprob, False)])
        assert set(out) == set(ranking_task.METRICS)
        record = out["response_ranking"]
        assert record["logprob"] == pytest.approx(logprob)
        assert record["mean_logprob"] == pytest.approx(logprob / doc["n_tokens"])
        records.append(record)
    expected = summarize(records)
    assert ranking_task.response_ranking(records) == pytest.approx(expected["response_ranking"]["estimate"])
    assert ranking_task.response_ranking_sum(records) == pytest.approx(expected["response_ranking_sum"]["estimate"])
    assert ranking_task.response_ranking_conditional(records) == pytest.approx(
        expected["response_ranking_conditional"]["estimate"]
    )
    assert ranking_task.n_comparisons(records) == 10
    assert ranking_task.tokenization_mismatch_rate(records) == 0.0


def test_missing_tokenizer_is_explained(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    with pytest.raises(ValueError, match="pretrained=MODEL"):
        ranking_task.load_docs(pairs=str(pairs), n_pairs=4, distractors=1)


def test_leak_task_documents_and_results(offline_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    docs = leak_task.load_docs(n_instructions=3, offline=True)["test"]
    assert len(docs) == 3 and all(d["prompt"].startswith("<|user|>\n") for d in docs)
    verdict = leak_task.process_results(docs[0], ["Step one.\n#### 7"])
    assert set(verdict) == set(DETECTORS) and verdict["gsm"] is True and verdict["poem"] is False
