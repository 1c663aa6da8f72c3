"""The study's plan: which checkpoints, where they are cached, how entries and references are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from implicit_if.cli import app
from implicit_if.study import plan
from implicit_if.study.plan import checkpoint_dir, is_trained, study_runs
from implicit_if.study.runner import REFERENCE_GENERATOR, reference_outputs, study_entries, train_missing


def test_the_first_seed_reference_and_response_train_first_and_single_tasks_use_one_seed() -> None:
    runs = study_runs((0, 1), (0,))
    assert [r.entry_name for r in runs] == [
        "gemma-3-270m-instruction-seed0",
        "gemma-3-270m-response-seed0",
        "gemma-3-270m-gsm-seed0",
        "gemma-3-270m-poems-seed0",
        "gemma-3-270m-chess-seed0",
        "gemma-3-270m-instruction-seed1",
        "gemma-3-270m-response-seed1",
    ]


def test_checkpoint_folders_are_stable_and_change_with_seed_and_data(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path("/checkpoints")
    first, again = (checkpoint_dir(study_runs((0,), ())[0], root) for _ in range(2))
    assert first == again and first.parent == root
    assert checkpoint_dir(study_runs((1,), ())[0], root) != first
    monkeypatch.setattr(plan, "fixture_digest", lambda name: "edited")
    assert checkpoint_dir(study_runs((0,), ())[0], root) != first


def test_a_checkpoint_counts_as_trained_only_with_its_model_card(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not is_trained(tmp_path)
    (tmp_path / "README.md").write_text("card")
    assert is_trained(tmp_path)


def test_finished_checkpoints_keep_their_model_and_drop_their_resume_state(tmp_path: Path) -> None:
    finished, unfinished = study_runs((0,), ())
    for run, card in ((finished, True), (unfinished, False)):
        folder = checkpoint_dir(run, tmp_path)
        (folder / "checkpoints" / "step-0000010").mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        if card:
            (folder / "README.md").write_text("card")
    found = train_missing([finished, unfinished], tmp_path, lambda line: None, train=False)
    assert list(found) == [finished.entry_name]
    assert (
        not (found[finished.entry_name] / "checkpoints").exists()
        and (found[finished.entry_name] / "config.json").exists()
    )
    assert (checkpoint_dir(unfinished, tmp_path) / "checkpoints" / "step-0000010").is_dir()  # still resumable


def test_entries_say_their_adaptation_system_and_seed() -> None:
    runs = study_runs((0, 1), (0,))
    entries = study_entries(runs, {r.entry_name: Path(f"/c/{r.entry_name}") for r in runs})
    table = {e.spec.name: (e.adaptation, e.system, e.seed) for e in entries}
    assert table["study-gemma-3-270m-base"] == ("base", "study-gemma-3-270m-base", 0)
    assert table["study-gemma-3-270m-rules-all"] == ("rules", "study-gemma-3-270m-rules-all", 0)
    assert table["study-gemma-3-270m-response-seed1"] == ("response", "study-gemma-3-270m-response", 1)
    assert table["study-gemma-3-270m-gsm-seed0"] == ("single-task:gsm", "study-gemma-3-270m-gsm", 0)


def test_every_seed_reference_carries_one_generator_name() -> None:
    outputs = [{"instruction": "i", "output": "o", "generator": "study-gemma-3-270m-instruction-seed1", "dataset": "d"}]
    assert reference_outputs(outputs) == [{**outputs[0], "generator": REFERENCE_GENERATOR}]


@pytest.mark.parametrize("seeds", ["x", "", "-1"])
def test_bad_seeds_are_one_line_and_exit_1(seeds: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["study", "--seeds", seeds, "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--seeds" in result.output
    assert "Traceback" not in result.output and not any(tmp_path.iterdir())
