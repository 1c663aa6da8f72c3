"""lm-eval's own vLLM model runs our tasks, with vLLM's parallelism options passed through lm-eval
(`tensor_parallel_size`, `data_parallel_size` in `--model_args`), and gives the numbers
`implicit-if rank` gives on the hf backend.

The real `lm_eval` CLI of the vLLM virtualenv (which holds implicit-if and lm-eval) runs in a
subprocess. On CPU only size 1 of either option exists; lm-eval hands both to `vllm.LLM`, which
refuses options it does not know, so a run at size 1 shows they reach the engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ranking_fixtures import PAIRS, write_pairs
from typer.testing import CliRunner

from implicit_if.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

N_PAIRS, K = 6, 2


def test_lm_eval_vllm_model_runs_the_ranking_task_as_rank_does(
    vllm_python: Path, smollm2_dir: str, tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))
    pairs = write_pairs(tmp_path / "pairs.jsonl", PAIRS)
    metadata = {"pairs": str(pairs), "n_pairs": N_PAIRS, "distractors": K, "seed": 0}
    model_args = (
        f"pretrained={smollm2_dir},dtype=float32,tensor_parallel_size=1,data_parallel_size=1,"
        "enforce_eager=True,max_model_len=2048"
    )
    command = [
        str(vllm_python.parent / "lm_eval"), "--model", "vllm", "--model_args", model_args,
        "--tasks", "implicit_if_ranking", "--metadata", json.dumps(metadata), "--batch_size", "auto",
        "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    handed = results["config"]["model_args"]  # what lm-eval handed to vllm.LLM
    assert (handed["tensor_parallel_size"], handed["data_parallel_size"]) == (1, 1)
    theirs = results["results"]["implicit_if_ranking"]

    out = tmp_path / "scores.jsonl"
    cli = CliRunner().invoke(
        app,
        ["rank", "--model", smollm2_dir, "--pairs", str(pairs), "--limit", str(N_PAIRS), "--distractors", str(K),
         "--seed", "0", "--dtype", "float32", "--output", str(out), "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    ours = json.loads(cli.output[cli.output.index("{") :])
    for metric in ("response_ranking", "response_ranking_sum", "response_ranking_conditional"):
        assert theirs[f"{metric},none"] == pytest.approx(ours[metric]["estimate"], abs=1e-12), metric
    assert theirs["n_comparisons,none"] == N_PAIRS * K
