"""lm-eval finds the implicit_if group with no --include_path: in this environment and after a
plain wheel install into a fresh virtualenv, with the real lm_eval CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

SUBTASKS = ("implicit_if_ranking", "implicit_if_leak", "implicit_if_alpacaeval")

LIST_SCRIPT = """
import json
from lm_eval.tasks import TaskManager
tm = TaskManager()
print(json.dumps({"groups": [g for g in tm.all_groups if g.startswith("implicit_if")],
                  "subtasks": [t for t in tm.all_subtasks if t.startswith("implicit_if")]}))
"""


def _listed(python: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    out = subprocess.run([python, "-c", LIST_SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_hook_makes_group_visible_in_this_environment() -> None:
    listed = _listed(sys.executable)
    assert "implicit_if" in listed["groups"]
    assert set(SUBTASKS) <= set(listed["subtasks"])


def test_hook_can_be_switched_off() -> None:
    env = {**os.environ, "IMPLICIT_IF_NO_LM_EVAL_HOOK": "1"}
    listed = _listed(sys.executable, env)
    assert "implicit_if" not in listed["groups"]


def test_explicit_include_path_is_not_indexed_twice() -> None:
    from implicit_if.lm_eval_hook import tasks_dir

    script = (
        "from lm_eval.tasks import TaskManager\n"
        f"tm = TaskManager(include_path={str(tasks_dir())!r})\n"
        "print(sum(1 for p in tm.include_path if str(p).rstrip('/').endswith('tasks')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_hook_ignores_unsupported_lm_eval_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from implicit_if import lm_eval_hook

    class FakeManager:
        def __init__(self, verbosity=None, include_path=None):
            self.include_path = include_path

    module = types.SimpleNamespace(TaskManager=FakeManager)
    monkeypatch.setattr(lm_eval_hook, "_version_supported", lambda: False)
    lm_eval_hook.patch_task_manager(module)
    assert FakeManager(include_path=None).include_path is None
    monkeypatch.setattr(lm_eval_hook, "_version_supported", lambda: True)
    lm_eval_hook.patch_task_manager(module)
    assert FakeManager(None, "x").include_path[0] == "x"
    assert FakeManager().include_path[-1] == lm_eval_hook.tasks_dir().resolve()


@pytest.mark.slow
def test_wheel_install_in_fresh_venv_runs_lm_eval(tmp_path: Path, repo_root: Path, smollm2_dir: str) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(repo_root),
            "-w",
            str(wheels),
        ],
        check=True,
    )
    wheel = next(wheels.glob("implicit_if-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".pth"))}
    assert top_level == {"implicit_if"}, top_level  # no generic names like harness/tasks/leaderboards
    assert "implicit_if_lm_eval.pth" in names
    assert any(n.startswith("implicit_if/tasks/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("implicit_if/data/fixtures/") for n in names)

    # A fresh virtualenv that borrows this environment's dependencies (a plain path entry, so
    # none of this environment's .pth files run) and gets implicit-if only from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    fresh_site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (fresh_site / "zz_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(fresh_site), str(wheel)], check=True
    )
    located = subprocess.run(
        [python, "-c", "import implicit_if; print(implicit_if.__file__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert located.startswith(str(fresh_site)), located

    listed = _listed(python)
    assert "implicit_if" in listed["groups"] and set(SUBTASKS) <= set(listed["subtasks"])

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMPLICIT_IF_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out_dir = tmp_path / "lm_eval_out"
    run = subprocess.run(
        [
            python,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={smollm2_dir},dtype=float32",
            "--tasks",
            "implicit_if_leak",
            "--limit",
            "3",
            "--gen_kwargs",
            "max_gen_toks=32",
            "--output_path",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = list(out_dir.rglob("results_*.json"))
    assert results, run.stdout[-2000:]
    payload = json.loads(results[0].read_text())
    assert "implicit_if_leak" in payload["results"]
