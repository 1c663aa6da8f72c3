"""Fast checks of the trainer's small parts: schedules, the output directory, the metrics log, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.train import load_recipe
from implicit_if.train.checkpoint import (
    MetricsLog,
    OutputDirError,
    check_output_dir,
    clear_output_dir,
    list_checkpoints,
    resolve_resume,
)
from implicit_if.train.loop import resume_key
from implicit_if.train.schedules import lr_at, warmup_steps_for


def test_warmup_rises_to_the_peak_then_linear_decay_reaches_the_floor() -> None:
    lrs = [lr_at(s, base_lr=1.0, total_steps=10, warmup=2) for s in range(10)]
    assert lrs[:3] == [0.5, 1.0, 1.0]
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[-1] == pytest.approx(1 / 8)  # one step before the end of an 8-step decay
    assert lr_at(5, base_lr=1.0, total_steps=10, warmup=0, schedule="constant") == 1.0


def test_cosine_decays_to_min_lr_ratio() -> None:
    lrs = [lr_at(s, base_lr=2.0, total_steps=101, warmup=1, schedule="cosine", min_lr_ratio=0.1) for s in range(101)]
    assert lrs[1] == pytest.approx(2.0) and lrs[51] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert min(lrs) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100))))
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(5, base_lr=1.0, total_steps=10, warmup=0, schedule="step")


def test_warmup_steps_round_up_and_explicit_steps_win() -> None:
    assert warmup_steps_for(85, 0.03) == 3 and warmup_steps_for(10, 0.0) == 0
    assert warmup_steps_for(85, 0.03, warmup_steps=10) == 10 and warmup_steps_for(5, 0.03, warmup_steps=10) == 5


def test_a_used_output_directory_needs_resume_or_overwrite(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "new", resuming=False, overwrite=False) is False  # absent: fine
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(OutputDirError, match="--resume auto"):
        check_output_dir(run, resuming=False, overwrite=False)
    with pytest.raises(OutputDirError, match="found no checkpoint"):
        check_output_dir(run, resuming=False, overwrite=False, auto_resume=True)
    assert check_output_dir(run, resuming=True, overwrite=False) is False
    assert check_output_dir(run, resuming=False, overwrite=True) is True
    # --resume auto --overwrite: continue when a checkpoint exists, else start over (a run killed before its first)
    assert check_output_dir(run, resuming=False, overwrite=True, auto_resume=True) is True
    clear_output_dir(run)
    assert list(run.iterdir()) == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="not a training run"):
        check_output_dir(other, resuming=False, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"


def test_resume_auto_takes_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    assert resolve_resume(tmp_path, "auto") is None and resolve_resume(tmp_path, None) is None
    for name, complete in [
        ("step-0000003", True),
        ("step-0000006", True),
        ("step-0000009.partial", False),
        ("step-0000012", False),
    ]:
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        if complete:
            (tmp_path / "checkpoints" / name / "trainer_state.json").write_text("{}")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 6]
    assert resolve_resume(tmp_path, "auto").name == "step-0000006"
    with pytest.raises(OutputDirError, match="not a checkpoint"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoints" / "step-0000012"))


def test_metrics_log_keeps_records_up_to_the_resumed_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in range(1, 6):
        log.append({"step": step, "loss": 1.0 / step})
    MetricsLog(path, keep_through_step=3)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
    MetricsLog(path)  # a fresh run starts an empty log
    assert path.read_text() == ""


def test_resume_key_ignores_only_bookkeeping_settings() -> None:
    base = resume_key(load_recipe("tiny-cpu"))
    assert resume_key(load_recipe("tiny-cpu", ["training.checkpoint_every=7", "training.logging_every=2"])) == base
    assert resume_key(load_recipe("tiny-cpu", ["training.seed=1"])) != base


def test_cli_lists_recipes_and_prints_a_resolved_recipe() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["train", "--list-recipes"])
    assert listed.exit_code == 0 and "llama2-7b-lima-response" in listed.output and "tiny-cpu" in listed.output
    shown = runner.invoke(app, ["train", "--recipe", "olmo-7b-gsm8k", "--dry-run", "training.epochs=10"])
    assert shown.exit_code == 0
    resolved = json.loads(shown.output)
    assert resolved["training"]["epochs"] == 10 and resolved["training"]["learning_rate"] == 3e-6
    assert runner.invoke(app, ["train", "--accelerate-config", "fsdp"]).output.strip().endswith("fsdp.yaml")


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "--recipe is required"),
        (["--recipe", "tiny-cpu"], "--output is required"),
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--recipe", "tiny-cpu", "--dry-run", "training.epochs=-1"], "training.epochs"),
    ],
)
def test_cli_errors_name_the_fix(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2 and message in result.output


def test_cli_refuses_a_used_output_directory_before_loading_anything(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    result = CliRunner().invoke(app, ["train", "--recipe", "tiny-cpu", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"


def test_model_card_names_the_hub_original_of_an_embedded_base_and_shows_provenance() -> None:
    from implicit_if.train.model_card import render_model_card

    recipe = load_recipe("gemma-3-270m-lima-response")
    provenance = {
        "recipe": {"name": recipe.name, "digest": recipe.digest(), "resolved": recipe.model_dump(mode="json")},
        "data": {"dataset": "lima", "n_examples": 30, "fingerprint": "f" * 64, "origins": ["fixture:lima.jsonl"]},
        "code": {"implicit_if": "9.9.9", "git_commit": "c" * 40, "git_dirty": True},
        "training": {
            "steps": 3,
            "epochs": 0.2,
            "final_loss": 2.5,
            "tokens_seen": 1000,
            "target_tokens_seen": 900,
            "world_size": 1,
            "device": "cpu",
            "precision": "fp32",
            "attn_implementation": "sdpa",
        },
    }
    card = render_model_card(provenance)
    front = card.split("---")[1]
    assert "base_model: google/gemma-3-270m" in front and "response-tuning" in front
    assert "f" * 64 in card and "implicit-if 9.9.9" in card and "c" * 40 in card and "(modified)" in card
    assert "Response tuning of google/gemma-3-270m (the embedded copy" in card
    assert "learning_rate: 1.0e-05" in card  # the resolved recipe is embedded in full
