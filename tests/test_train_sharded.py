"""The shipped accelerate configs over two CPU processes (gloo): FSDP2 (`fsdp`) and DeepSpeed ZeRO-3
(`deepspeed-zero3`) train exactly like one process, and their gathered model is a normal HF directory.

Each case trains a tiny Llama (untied output layer) or Gemma 3 (tied, sliding-window layers) with the
SmolLM2 tokenizer, float32, for three steps of two accumulated micro-batches each, once in this process
and once under `accelerate launch` with the config as shipped, and compares losses, gradient norms and
the saved weights. The model starts from a saved directory (init: pretrained) so both runs begin from
the same weights: ZeRO-3 builds a randomly initialised model already partitioned (zero3_init_flag),
which draws other initial weights from the same seed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
from train_fixtures import safetensors_weights, tiny_gemma3, tiny_llama

from implicit_if.train import accelerate_config, load_recipe, train

pytestmark = pytest.mark.slow

# Measured on 2 CPU cores (torch 2.13, accelerate 1.15, deepspeed 0.19.8), three steps: the saved weights
# differ from the single run's by at most 3.2e-7 and the per-token losses by at most 2.2e-7 (relative).
# The weights' differences are float32 summation order in the gradients (5e-7 of their largest entry)
# amplified by Adam with eps 1e-3 (up to lr / eps = 10x), so the bound leaves a margin of 30 for other
# machines; a real error is far above it: a gradient counted twice (the untied-output-layer bug this test
# found) moved weights by 3.6e-2, and training moves them by more than 1e-3 from their initial values.
WEIGHTS_ATOL = 1e-5
LOSS_RTOL = 1e-6
# One process reports a float32 norm over 1.6M gradient entries (torch.linalg.vector_norm on CPU), up to 7e-4
# off its float64 value (2e-4 for the output layer's gradient alone); ZeRO-3 reports it exactly. Measured
# against the single process: FSDP2 differs by up to 3.6e-4, ZeRO-3 by up to 7.1e-4 (relative), while the
# gradients themselves agree to 5e-7 of their largest entry. A wrong gradient scale moves it by percents.
GRAD_NORM_RTOL = 2e-3

NO_DEEPSPEED = (
    "deepspeed is not installed here (it is not a dependency of implicit-if): pip install deepspeed; "
    "ZeRO-3 then runs over two CPU processes (its CPU accelerator, gloo)"
)
NO_COMPILER = (
    "deepspeed's CPU accelerator compiles its deepspeed_shm_comm op on first use (torch cpp_extension): "
    "it needs a C++ compiler (c++) and ninja on PATH"
)


def deepspeed_skip_reason() -> str | None:
    if find_spec("deepspeed") is None:
        return NO_DEEPSPEED
    if shutil.which("c++") is None or shutil.which("ninja") is None:
        return NO_COMPILER
    return None


CONFIGS = [
    pytest.param("fsdp", "DistributedType.FSDP", id="fsdp2"),
    pytest.param(
        "deepspeed-zero3",
        "DistributedType.DEEPSPEED",
        id="zero3",
        marks=pytest.mark.skipif(deepspeed_skip_reason() is not None, reason=deepspeed_skip_reason() or ""),
    ),
]
MODELS = {"llama": tiny_llama, "gemma3": tiny_gemma3}


@pytest.fixture(autouse=True)
def _isolated(offline_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with dataset caches in a temporary folder."""
    monkeypatch.setenv("IMPLICIT_IF_CACHE", str(tmp_path / "cache"))


def write_recipe(tmp_path: Path, architecture: str, smollm2_dir: str) -> Path:
    """A tiny randomly initialised model saved as an HF directory, and a recipe that fine-tunes it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = MODELS[architecture](vocab_size=len(tokenizer), seed=0)
    initial = tmp_path / f"initial-{architecture}"
    model.save_pretrained(initial)
    tokenizer.save_pretrained(initial)
    recipe = {
        "name": f"sharded-{architecture}",
        "model": {"init": "pretrained", "name_or_path": str(initial), "attn_implementation": "sdpa"},
        "data": {"dataset": "lima", "adaptation": "response", "max_length": 96, "limit": 18, "offline": True},
        "training": {
            "max_steps": 3,
            "batch_size": 6,
            "micro_batch_tokens": 256,  # two micro-batches a step on each process: accumulation is exercised
            "learning_rate": 1e-2,
            "schedule": "cosine",
            "warmup_ratio": 0.1,
            "adam_eps": 1e-3,  # updates follow the gradient's size (see STABLE_ADAM in test_train_loop.py)
            "precision": "fp32",
            "seed": 0,
        },
    }
    path = tmp_path / f"{architecture}.yaml"
    path.write_text(json.dumps(recipe, indent=1))  # JSON is YAML
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(config: str, recipe: Path, output: Path, *options: str) -> None:
    """`accelerate launch --config_file <shipped config> -m implicit_if.train`, on CPU whatever the machine has."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        accelerate_config(config),
        "--main_process_port",
        str(free_port()),
        "-m",
        "implicit_if.train",
        "--recipe",
        str(recipe),
        "--output",
        str(output),
        "--quiet",
        *options,
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-4000:]


def read_metrics(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("architecture", sorted(MODELS))
@pytest.mark.parametrize(("config", "distributed"), CONFIGS)
def test_two_sharded_processes_train_like_one(
    tmp_path: Path, smollm2_dir: str, config: str, distributed: str, architecture: str
) -> None:
    recipe = write_recipe(tmp_path, architecture, smollm2_dir)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    train(load_recipe(str(recipe)), single, progress=False)
    launch(config, recipe, sharded)

    # It really sharded: accelerate alone would have trained plain DDP on CPU without a word.
    provenance = json.loads((sharded / "training_provenance.json").read_text())["training"]
    assert (provenance["world_size"], provenance["distributed"], provenance["device"]) == (2, distributed, "cpu")
    reference = json.loads((single / "training_provenance.json").read_text())["training"]
    assert provenance["trainable_parameter_count"] == reference["trainable_parameter_count"]

    steps = list(zip(read_metrics(single), read_metrics(sharded), strict=True))
    assert len(steps) == 3
    for one, two in steps:
        assert two["loss"] == pytest.approx(one["loss"], rel=LOSS_RTOL), (one, two)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=GRAD_NORM_RTOL), (one, two)

    # The gathered weights: the same tensors (a tied output layer written once), equal to the single run's.
    weights, expected = safetensors_weights(sharded), safetensors_weights(single)
    assert max_difference(weights, expected) <= WEIGHTS_ATOL
    assert max_difference(weights, safetensors_weights(tmp_path / f"initial-{architecture}")) > 1e-3

    # A normal HF directory: it loads with every weight in place and computes what the single run's model does.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded, info = AutoModelForCausalLM.from_pretrained(sharded, output_loading_info=True)
    assert not any(info.values()), info
    tokenizer = AutoTokenizer.from_pretrained(sharded)
    ids = tokenizer("<|user|>\nName a prime number.\n<|assistant|>\n", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = loaded.eval()(ids).logits
        reference_logits = AutoModelForCausalLM.from_pretrained(single).eval()(ids).logits
    assert torch.allclose(logits, reference_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("config", "distributed"), CONFIGS)
def test_a_sharded_checkpoint_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, smollm2_dir: str, config: str, distributed: str
) -> None:
    """accelerate's sharded state (FSDP2: SHARDED_STATE_DICT; ZeRO-3: its partitioned files) saved at step 2 of 3."""
    recipe = write_recipe(tmp_path, "llama", smollm2_dir)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    launch(config, recipe, straight, "training.checkpoint_every=2")
    checkpoint = straight / "checkpoints" / "step-0000002"
    launch(config, recipe, resumed, "training.checkpoint_every=2", "--resume", str(checkpoint))
    provenance = json.loads((resumed / "training_provenance.json").read_text())["training"]
    assert (provenance["distributed"], provenance["resumed_from_step"]) == (distributed, 2)
    timeless = lambda records: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in records]  # noqa: E731
    assert timeless(read_metrics(resumed)) == timeless(read_metrics(straight))[2:]
    assert max_difference(safetensors_weights(straight), safetensors_weights(resumed)) <= 1e-7
