"""`implicit-if eval` on the other engines: vLLM in-process (its own virtualenv) and a served model
behind an OpenAI-compatible endpoint (a real vLLM server on loopback).

Both run AlpacaEval's set, which falls back to the bundled fixture without the hub, and both must
agree with the hf backend on the same weights: the same greedy answers, the same ranking scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app

COMMON = ["--dataset", "alpaca_eval", "--limit", "3", "--max-new-tokens", "8", "--judge", "smollm2-local"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "IMPLICIT_IF_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def records(folder: Path) -> tuple[list[dict], list[dict], dict]:
    outputs = json.loads((folder / "outputs.json").read_text())
    ranking = [json.loads(line) for line in (folder / "ranking.jsonl").read_text().splitlines()]
    return outputs, ranking, json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: str) -> Path:
    """The same evaluation on the hf backend in float32: what the other engines must reproduce."""
    folder = tmp_path_factory.mktemp("hf") / "run"
    env = {**os.environ, **OFFLINE}
    command = [str(Path(sys.executable).parent / "implicit-if"), "eval", smollm2_dir, *COMMON]
    result = subprocess.run(
        [*command, "--dtype", "float32", "--out", str(folder)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def assert_same_run(folder: Path, reference: Path, *, per_token: float) -> None:
    outputs, ranking, summary = records(folder)
    want_outputs, want_ranking, _ = records(reference)
    assert summary["evaluation_set"] == {"dataset": "alpaca_eval", "source": "fixture"}
    assert [o["instruction"] for o in outputs] == [o["instruction"] for o in want_outputs]
    assert [o["output"] for o in outputs] == [o["output"] for o in want_outputs]  # greedy on the same weights
    assert len(ranking) == len(want_ranking) > 0
    for got, want in zip(ranking, want_ranking):
        assert (got["instruction_id"], got["response_id"], got["n_tokens"]) == (
            want["instruction_id"],
            want["response_id"],
            want["n_tokens"],
        )
        assert abs(got["logprob"] - want["logprob"]) <= per_token * want["n_tokens"], (got, want)
    assert 0 <= summary["winrate"]["win_rate"] <= 100


@pytest.mark.slow
@pytest.mark.vllm
def test_eval_with_the_vllm_backend_matches_hf(
    tmp_path: Path, smollm2_dir: str, vllm_python: Path, hf_run: Path
) -> None:
    # vLLM lives in its own virtualenv (it pins its own torch): the command runs from there
    command = vllm_python.parent / "implicit-if"
    folder = tmp_path / "run"
    result = subprocess.run(
        [str(command), "eval", smollm2_dir, *COMMON, "--backend", "vllm", "--dtype", "float32", "--out", str(folder)],
        env={**os.environ, **OFFLINE, "VLLM_CPU_KVCACHE_SPACE": "2"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(folder, hf_run, per_token=1e-3)


@pytest.mark.slow
@pytest.mark.vllm
def test_eval_with_the_openai_backend_against_a_served_model_matches_hf(
    tmp_path: Path, vllm_server, hf_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", vllm_server.api_key)
    folder = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "eval", vllm_server.model, *COMMON, "--backend", "openai", "--base-url", vllm_server,
            "--tokenizer", vllm_server.model_dir, "--out", str(folder),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert vllm_server.api_key not in result.output
    assert_same_run(folder, hf_run, per_token=1e-3)
    _, _, summary = records(folder)
    assert summary["dtype"] == "served"
    for path in folder.iterdir():  # the key never reaches the records or their fingerprints
        assert vllm_server.api_key not in path.read_text(errors="replace"), path.name


def test_eval_with_the_openai_backend_needs_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = CliRunner().invoke(
        app, ["eval", "served-model", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
              "--offline", "--limit", "2", "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "OPENAI_API_KEY" in result.output and len(result.output.strip().splitlines()) == 1
