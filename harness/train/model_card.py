"""Provenance of a trained checkpoint and the model card (README.md) that shows it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml


def code_version() -> dict[str, Any]:
    """The implicit-if version, its git commit when run from a checkout, and the key library versions."""
    import accelerate
    import torch
    import transformers

    from .. import __version__

    version: dict[str, Any] = {
        "implicit_if": __version__,
        "torch": str(torch.__version__),
        "transformers": str(transformers.__version__),
        "accelerate": str(accelerate.__version__),
    }
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(source), "status", "--porcelain", "--", "."],
                capture_output=True,
                text=True,
                timeout=10,
            )
            version["git_commit"] = commit.stdout.strip()
            version["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass  # an installed wheel has no git history; the version number stands alone
    return version


def base_model_id(name_or_path: str | None) -> str | None:
    """The hub id a model card should name: embedded models map to the original they were converted from."""
    from ..models import EMBEDDED_MODELS

    if name_or_path in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[name_or_path].hub_equivalent
    return name_or_path


def embedded_description(name_or_path: str | None) -> str | None:
    from ..models import EMBEDDED_MODELS

    return EMBEDDED_MODELS[name_or_path].description if name_or_path in EMBEDDED_MODELS else None


def render_model_card(provenance: dict[str, Any]) -> str:
    """README.md with Hub-style front matter, a summary and the full provenance."""
    recipe = provenance["recipe"]
    data = provenance["data"]
    run = provenance["training"]
    model = recipe["resolved"]["model"]
    base = base_model_id(model["name_or_path"]) if model["init"] == "pretrained" else None
    front = {
        "library_name": "transformers",
        "tags": ["implicit-if", f"{recipe['resolved']['data']['adaptation']}-tuning"],
    }
    if base:
        front["base_model"] = base
    adaptation = recipe["resolved"]["data"]["adaptation"]
    embedded = embedded_description(model["name_or_path"]) if base else None
    summary = (
        f"{'Response' if adaptation == 'response' else 'Instruction'} tuning of "
        f"{base or 'a randomly initialised ' + model['config'].get('model_type', 'model')}"
        f"{f' (the embedded copy: {embedded})' if embedded else ''} "
        f"on `{data['dataset']}` ({data['n_examples']} examples, {recipe['resolved']['data']['format']} format), "
        f"trained by implicit-if's bundled trainer with recipe `{recipe['name']}`."
    )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        f"# {recipe['name']}",
        "",
        summary,
        "",
        "| | |",
        "| --- | --- |",
        f"| steps | {run['steps']} ({run['epochs']:.2f} epochs) |",
        f"| final loss | {run['final_loss']:.4f} (per target token) |",
        f"| tokens seen | {run['tokens_seen']:,} ({run['target_tokens_seen']:,} with loss) |",
        f"| data fingerprint | `{data['fingerprint']}` |",
        f"| data sources | {', '.join(data['origins'])} |",
        f"| code | implicit-if {provenance['code']['implicit_if']}"
        + (
            f", commit `{provenance['code']['git_commit']}`"
            f"{' (modified)' if provenance['code'].get('git_dirty') else ''}"
            if provenance["code"].get("git_commit")
            else ""
        )
        + " |",
        f"| trained parameters | {run.get('trained_parameters', 'all')}"
        + (
            " (full fine-tuning, as the study did)"
            if run.get("trained_parameters", "all") == "all"
            else " (not full fine-tuning: the study trained every parameter)"
        )
        + " |",
        f"| hardware | {run['world_size']} x {run['device']}, {run['precision']}, "
        f"attention {run['attn_implementation']} |",
        f"| loss | {run.get('loss', 'full logits')} |",
        "",
        "Loss falls on response tokens and EOS only; examples are packed without padding, with "
        "attention kept inside each example. The per-step log is `metrics.jsonl`; the same provenance "
        "in machine-readable form is `training_provenance.json`.",
        "",
        "## Recipe (resolved)",
        "",
        "```yaml",
        yaml.safe_dump(recipe["resolved"], sort_keys=False, allow_unicode=True).strip(),
        "```",
        "",
        "## Provenance",
        "",
        "```yaml",
        yaml.safe_dump(
            {k: v for k, v in provenance.items() if k != "recipe"}, sort_keys=False, allow_unicode=True
        ).strip(),
        "```",
        "",
    ]
    return "\n".join(lines)
