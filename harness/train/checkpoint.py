"""The output directory: what may be overwritten, resumable checkpoints, the final model, the metrics log."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_jsonl

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
PROVENANCE_FILE = "training_provenance.json"
# Files that mark a directory as one of our runs (so --overwrite may clear it).
RUN_MARKERS = (METRICS_FILE, PROVENANCE_FILE, CHECKPOINTS)


class OutputDirError(ValueError):
    """The output directory cannot be used as asked; the message names the fix."""


def checkpoint_path(output: Path, step: int) -> Path:
    return output / CHECKPOINTS / f"step-{step:07d}"


def list_checkpoints(output: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a trainer state), oldest first."""
    folder = output / CHECKPOINTS
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith("step-") and (entry / STATE_FILE).is_file():
                found.append((int(entry.name.removeprefix("step-")), entry))
    return sorted(found)


def resolve_resume(output: Path, resume: str | None) -> Path | None:
    """`auto`: the newest checkpoint in `output` (None when there is none); a path: that checkpoint."""
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(output)
        return found[-1][1] if found else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise OutputDirError(
            f"{path} is not a checkpoint (no {STATE_FILE}); give a folder under DIR/{CHECKPOINTS}/ or --resume auto"
        )
    return path


def check_output_dir(output: Path, *, resuming: bool, overwrite: bool, auto_resume: bool = False) -> bool:
    """Refuse to clobber: a used directory needs --resume or --overwrite, and --overwrite only clears our own runs.

    Only reads (every process may call it); returns whether `clear_output_dir` must run.
    """
    if not output.exists():
        return False
    if not output.is_dir():
        raise OutputDirError(f"--output {output} is a file: give a directory")
    entries = [e for e in output.iterdir() if not e.name.startswith(".")]
    if not entries or resuming:
        return False
    ours = any((output / marker).exists() for marker in RUN_MARKERS)
    if not overwrite:
        if ours and auto_resume:
            raise OutputDirError(
                f"--resume auto found no checkpoint in {output / CHECKPOINTS} "
                "(training.checkpoint_every saves them): "
                "pass --overwrite to start again, or choose another --output"
            )
        hint = (
            "pass --resume auto to continue it, --overwrite to replace it, or" if ours else "it is not a training run;"
        )
        raise OutputDirError(f"--output {output} is not empty: {hint} choose another --output")
    if not ours:
        raise OutputDirError(
            f"--output {output} holds files that are not a training run; "
            "--overwrite only clears training runs: choose another --output"
        )
    return True


def clear_output_dir(output: Path) -> None:
    for entry in output.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def save_checkpoint(accelerator: Any, output: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """accelerate state (model, optimizer, RNG; sharded under FSDP/ZeRO-3) plus our trainer state,
    renamed into place."""
    final = checkpoint_path(output, step)
    partial = final.with_name(final.name + ".partial")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(partial / STATE_FILE, state)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        for _, old in list_checkpoints(output)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: Path) -> dict[str, Any]:
    state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    accelerator.load_state(str(path))
    return state


def share_tied_weights(model: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """A gathered state dict (FSDP2, ZeRO-3) holds a separate copy of each tied weight (the output layer of
    Gemma or SmolLM2), which `save_pretrained` would write twice; make every alias name the first one's
    tensor, as in an unsharded model's state dict, so one copy is written."""
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if name not in state_dict:
            continue
        if id(param) in first:
            state_dict[name] = state_dict[first[id(param)]]
        else:
            first[id(param)] = name
    return state_dict


def save_final_model(
    accelerator: Any, model: Any, tokenizer: Any, output: Path, provenance: dict[str, Any], card: str
) -> None:
    """HF directory (config, safetensors, tokenizer), provenance and model card; staged then moved into place."""
    state_dict = accelerator.get_state_dict(model)  # every rank: gathers FSDP / ZeRO-3 shards
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.config.use_cache = True  # training turned it off; inference wants it
    staging = output / ".model.partial"
    if staging.exists():
        shutil.rmtree(staging)
    unwrapped.save_pretrained(staging, state_dict=share_tied_weights(unwrapped, state_dict))
    tokenizer.save_pretrained(staging)
    atomic_write_json(staging / PROVENANCE_FILE, provenance)
    for entry in sorted(staging.iterdir()):
        os.replace(entry, output / entry.name)
    staging.rmdir()
    atomic_write_text(output / "README.md", card)  # last: a model card means the directory is complete
    accelerator.wait_for_everyone()


class MetricsLog:
    """`metrics.jsonl`, one record per logging step; a resumed run keeps the records up to its checkpoint."""

    def __init__(self, path: Path, keep_through_step: int = 0) -> None:
        self.path = path
        kept: list[dict[str, Any]] = []
        if keep_through_step and path.exists():
            kept = read_jsonl(path)
            kept = [record for record in kept if record.get("step", 0) <= keep_through_step]
        atomic_write_jsonl(path, kept)

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
