"""End to end on CPU: tiny-cpu learns; the output is a loadable HF directory with provenance; resuming,
re-packing and splitting across processes do not change the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import SMALL, safetensors_weights
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.train import load_recipe, train

pytestmark = pytest.mark.slow

# Adam's update g / (sqrt(v) + eps) with the default eps turns rounding noise in near-zero gradients
# into full-size steps and hides any constant loss scale; a large eps makes updates follow the
# gradient's size, so comparing weights checks the loss normalisation itself.
STABLE_ADAM = ["training.adam_eps=1e-3"]


@pytest.fixture(autouse=True)
def _isolated(offline_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with dataset caches in a temporary folder."""
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def tiny(smollm2_dir: str) -> list[str]:
    """tiny-cpu's tokenizer by path: resolved in the real model cache before the cache moved."""
    return [f"model.tokenizer={smollm2_dir}"]


def read_metrics(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_tiny_cpu_trains_its_loss_falls_and_it_writes_a_model_directory(tmp_path: Path, tiny: list[str]) -> None:
    out = tmp_path / "tiny"
    result = CliRunner().invoke(app, ["train", "--recipe", "tiny-cpu", "--output", str(out), "--quiet", *tiny])
    assert result.exit_code == 0, result.output
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, len(metrics) + 1))
    assert all({"step", "loss", "lr", "tokens", "grad_norm"} <= m.keys() for m in metrics)
    first, last = [m["loss"] for m in metrics[:3]], [m["loss"] for m in metrics[-3:]]
    assert sum(last) / 3 < sum(first) / 3 - 1.0, (first, last)

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "training_provenance.json",
    ):
        assert (out / name).is_file(), name
    provenance = json.loads((out / "training_provenance.json").read_text())
    card = (out / "README.md").read_text()
    assert provenance["recipe"]["name"] == "tiny-cpu" and "tiny-cpu" in card
    assert provenance["data"]["fingerprint"] in card and provenance["data"]["origins"] == ["fixture:lima.jsonl"]
    assert provenance["code"]["implicit_if"] and f"implicit-if {provenance['code']['implicit_if']}" in card
    assert provenance["training"]["packing_isolation_max_change"] == 0.0

    # The saved weights are the trained ones: they fit the training data better than the initial weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from implicit_if.train.examples import load_training_data
    from implicit_if.train.modeling import build_model, packed_loss_sum
    from implicit_if.train.packing import collate_packed

    recipe = load_recipe("tiny-cpu", tiny)
    tokenizer = AutoTokenizer.from_pretrained(out)
    examples = load_training_data(recipe.data, tokenizer).examples
    batch = collate_packed(examples, (0, 1, 2))
    trained = AutoModelForCausalLM.from_pretrained(out).eval()
    initial = build_model(recipe.model, tokenizer, "sdpa", recipe.training.seed).eval()
    with torch.no_grad():
        assert packed_loss_sum(trained, batch) < packed_loss_sum(initial, batch) - 1.0


def test_resuming_gives_the_same_result_as_not_stopping(tmp_path: Path, tiny: list[str]) -> None:
    options = [*tiny, *SMALL, "training.max_steps=6", "training.checkpoint_every=3"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(load_recipe("tiny-cpu", options), straight, progress=False)
    checkpoint = straight / "checkpoints" / "step-0000003"
    assert (checkpoint / "trainer_state.json").is_file()
    train(load_recipe("tiny-cpu", options), resumed, resume=str(checkpoint), progress=False)
    assert max_difference(safetensors_weights(straight), safetensors_weights(resumed)) <= 1e-7
    timeless = lambda records: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in records]  # noqa: E731
    assert timeless(read_metrics(resumed)) == timeless(read_metrics(straight))[3:]
    provenance = json.loads((resumed / "training_provenance.json").read_text())
    assert provenance["training"]["resumed_from_step"] == 3

    # A different recipe must not silently continue from that checkpoint.
    with pytest.raises(ValueError, match="different recipe"):
        train(
            load_recipe("tiny-cpu", [*options, "training.learning_rate=0.02"]),
            tmp_path / "other",
            resume=str(checkpoint),
            progress=False,
        )


def test_loss_is_normalised_by_target_tokens_however_the_step_is_split(tmp_path: Path, tiny: list[str]) -> None:
    """One packed pass per step, or several accumulated ones: the same loss, gradient and update."""
    one, many = tmp_path / "one", tmp_path / "many"
    train(
        load_recipe(
            "tiny-cpu", [*tiny, *SMALL, *STABLE_ADAM, "training.max_steps=2", "training.micro_batch_tokens=1024"]
        ),
        one,
        progress=False,
    )
    train(
        load_recipe(
            "tiny-cpu", [*tiny, *SMALL, *STABLE_ADAM, "training.max_steps=2", "training.micro_batch_tokens=128"]
        ),
        many,
        progress=False,
    )
    split = json.loads((many / "training_provenance.json").read_text())["training"]["accumulation"]
    assert split >= 3 and json.loads((one / "training_provenance.json").read_text())["training"]["accumulation"] == 1
    for a, b in zip(read_metrics(one), read_metrics(many)):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["grad_norm"] == pytest.approx(
            b["grad_norm"], rel=1e-5
        )
    assert max_difference(safetensors_weights(one), safetensors_weights(many)) < 1e-6


def test_two_processes_train_like_one(tmp_path: Path, tiny: list[str]) -> None:
    """DDP over two CPU processes (torchrun, gloo): per-token normalisation across ranks gives the
    single-process run."""
    options = [*tiny, *SMALL, *STABLE_ADAM, "training.max_steps=2", "training.batch_size=6"]
    single, double = tmp_path / "single", tmp_path / "double"
    train(load_recipe("tiny-cpu", options), single, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "implicit_if.train",
        "--recipe",
        "tiny-cpu",
        "--output",
        str(double),
        "--quiet",
        *options,
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((double / "training_provenance.json").read_text())["training"]["world_size"] == 2
    for a, b in zip(read_metrics(single), read_metrics(double), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(
            b["grad_norm"], rel=1e-4
        )
    assert max_difference(safetensors_weights(single), safetensors_weights(double)) < 1e-6


def test_a_second_run_in_the_same_process_may_use_another_precision(
    tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """accelerate's state is process-wide: a bf16 run, even one that failed, must not bind the next run to bf16."""
    from implicit_if.train import checkpoint

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    options = [*tiny, *SMALL, "training.max_steps=1"]
    with monkeypatch.context() as patch:  # the failure that once bound the rest of a test run to bf16
        patch.setattr(checkpoint, "save_final_model", disk_full)
        with pytest.raises(OSError, match="No space"):
            train(load_recipe("tiny-cpu", [*options, "training.precision=bf16"]), tmp_path / "bf16", progress=False)
    result = train(load_recipe("tiny-cpu", [*options, "training.precision=fp32"]), tmp_path / "fp32", progress=False)
    provenance = json.loads((result.output_dir / "training_provenance.json").read_text())
    assert provenance["training"]["precision"] == "fp32"
