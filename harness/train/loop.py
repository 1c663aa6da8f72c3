"""The training loop: plain PyTorch plus accelerate (one process, DDP, FSDP or DeepSpeed ZeRO-3).

Read `train` top to bottom: set-up, then one screen of loop. The loss of a step is the summed
cross-entropy of its target tokens divided by their exact count over all micro-batches and
devices (known from the plan), so long and short examples weigh per token, however they were
packed. accelerate divides each backward by the accumulation count and the devices average
their gradients; `scale` undoes both.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..transformers_compat import accepts_logits_to_keep
from . import checkpoint as ckpt
from .cpu_memory import keep_freed_memory
from .examples import load_training_data
from .model_card import code_version, render_model_card
from .modeling import (
    build_model,
    check_packing_isolation,
    choose_attention,
    fused_loss_plan,
    load_tokenizer,
    packed_loss_sum,
)
from .packing import collate_packed, plan_training
from .recipes import Recipe
from .schedules import lr_at, warmup_steps_for

# Settings that may change between a checkpoint and its resumption without changing the result.
RESUME_FREE = {
    "name",
    "description",
    "notes",
    "training.logging_every",
    "training.checkpoint_every",
    "training.keep_checkpoints",
}


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    steps: int
    final_loss: float
    tokens_seen: int
    seconds: float


def resume_key(recipe: Recipe) -> dict[str, Any]:
    """The recipe minus the settings in RESUME_FREE: what a checkpoint must match."""
    dumped = recipe.model_dump(mode="json")
    for dotted in RESUME_FREE:
        *parents, leaf = dotted.split(".")
        section = dumped
        for part in parents:
            section = section[part]
        section.pop(leaf, None)
    return dumped


def mixed_precision(precision: str) -> str:
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return "bf16" if precision == "bf16" else "no"


def multi_process_cpu() -> bool:
    """torchrun on a machine without GPUs: accelerate needs to be told, or each process trains alone."""
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_with(kind: str) -> bool:
    """`accelerate launch` with an FSDP or DeepSpeed config says so in the environment."""
    return os.environ.get(f"ACCELERATE_USE_{kind}", "false").lower() == "true"


def shard_on_cpu(accelerator: Any) -> None:
    """FSDP over CPU processes (gloo). accelerate (1.15) turns FSDP on only on accelerators: on CPU it
    trains plain DDP without a word. PyTorch's `fully_shard` (FSDP2) runs on CPU with gloo, so the
    state is switched to FSDP, with a plugin read from the config that `accelerate launch` exported."""
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    plugin = getattr(state, "fsdp_plugin", None) or FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPU needs fsdp_version: 2 in the accelerate config (fully_shard); FSDP1 needs GPUs")
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    # both states, as accelerate does on GPUs: every later AcceleratorState() copies PartialState's type
    state.distributed_type = PartialState().distributed_type = DistributedType.FSDP


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only; norms and biases (1-D) are never decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def forget_previous_run() -> None:
    """accelerate keeps one state per process: without this, a second `train` in the same process
    (a notebook, the test suite) with another precision is refused, or inherits a failed run's state."""
    from accelerate.state import AcceleratorState, GradientState

    # accelerate's own tests reset it this way; the process group (PartialState) is kept
    AcceleratorState._reset_state()
    GradientState._reset_state()


def train(
    recipe: Recipe, output_dir: str | Path, *, resume: str | None = None, overwrite: bool = False, progress: bool = True
) -> TrainResult:
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType, set_seed
    from tqdm.auto import tqdm

    t = recipe.training
    forget_previous_run()
    output = Path(output_dir)
    # Without GPUs, accelerate is told cpu=True (gloo), except for DeepSpeed: it starts its own process
    # group (its CPU accelerator, gloo) only when not told so; with cpu=True it would train plain DDP.
    deepspeed_on_cpu = multi_process_cpu() and launched_with("DEEPSPEED")
    cpu = multi_process_cpu() and not deepspeed_on_cpu
    state = PartialState(cpu=cpu, **({"backend": "gloo"} if deepspeed_on_cpu else {}))
    resume_from = ckpt.resolve_resume(output, resume)
    must_clear = ckpt.check_output_dir(
        output, resuming=resume_from is not None, overwrite=overwrite, auto_resume=resume == "auto"
    )  # every rank raises alike
    state.wait_for_everyone()
    if state.is_main_process:
        if must_clear:
            ckpt.clear_output_dir(output)
        output.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()

    set_seed(t.seed)
    if not torch.cuda.is_available():
        keep_freed_memory()
    tokenizer = load_tokenizer(recipe.model)
    data = load_training_data(recipe.data, tokenizer)
    lengths = [len(e.input_ids) for e in data.examples]
    plan = plan_training(
        lengths,
        [e.n_targets for e in data.examples],
        batch_size=t.batch_size,
        micro_batch_tokens=t.micro_batch_tokens,
        epochs=t.epochs,
        seed=t.seed,
        world_size=state.num_processes,
        max_steps=t.max_steps,
    )
    accelerator = Accelerator(
        mixed_precision=mixed_precision(t.precision),
        gradient_accumulation_steps=plan.accumulation,
        cpu=cpu,
    )
    if cpu and launched_with("FSDP"):
        shard_on_cpu(accelerator)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # no dataloader is prepared, so say the shapes here
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = 1
        ds_config["gradient_clipping"] = t.max_grad_norm or 0.0
    attn = choose_attention(recipe.model.attn_implementation, accelerator.device.type)
    model = build_model(recipe.model, tokenizer, attn, t.seed)
    keep_only_targets = accepts_logits_to_keep(model)
    if t.freeze_embeddings:  # tied output layers (Gemma) freeze with them
        model.get_input_embeddings().weight.requires_grad_(False)
    if accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        # checked before `prepare`, which wraps the forward in autocast: the check compares in float32
        fused, loss_note = fused_loss_plan(
            model, t.loss_chunk_tokens, next(model.parameters()).device, keep_only_targets
        )
    else:  # FSDP / ZeRO-3 shard the output layer: its weight is not whole on any device
        fused, loss_note = None, f"full logits ({accelerator.distributed_type} shards the output layer)"
    optimizer = torch.optim.AdamW(
        param_groups(model, t.weight_decay), lr=t.learning_rate, betas=t.adam_betas, eps=t.adam_eps
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    isolation = check_packing_isolation(model, len(tokenizer), accelerator.device)

    start_step, previous_seconds = 0, 0.0
    if resume_from is not None:
        saved = ckpt.load_checkpoint(accelerator, resume_from)
        if saved["resume_key"] != resume_key(recipe) or saved["tokens_fingerprint"] != data.tokens_fingerprint:
            raise ValueError(
                f"checkpoint {resume_from} was made with a different recipe or data; "
                "resume with the same recipe and overrides"
            )
        start_step, previous_seconds = saved["step"], saved["seconds"]
    metrics = (
        ckpt.MetricsLog(output / ckpt.METRICS_FILE, keep_through_step=start_step)
        if accelerator.is_main_process
        else None
    )

    total, world, rank = len(plan.steps), accelerator.num_processes, accelerator.process_index
    warmup = warmup_steps_for(total, t.warmup_ratio, t.warmup_steps)
    tokens_seen = sum(s.n_tokens for s in plan.steps[:start_step])
    targets_seen = sum(s.n_targets for s in plan.steps[:start_step])
    loss_value, began = float("nan"), time.perf_counter()
    model.train()
    for step in tqdm(
        range(start_step, total),
        desc=f"train {recipe.name}",
        disable=not (progress and accelerator.is_main_process),
        initial=start_step,
        total=total,
    ):
        tick, this = time.perf_counter(), plan.steps[step]
        lr = lr_at(
            step,
            base_lr=t.learning_rate,
            total_steps=total,
            warmup=warmup,
            schedule=t.schedule,
            min_lr_ratio=t.min_lr_ratio,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        scale = plan.accumulation * world / this.n_targets
        loss_sum, grad_norm = torch.zeros((), device=accelerator.device), None
        for micro_batch in this.micro_batches[rank]:
            batch = {
                k: v.to(accelerator.device)
                for k, v in collate_packed(data.examples, micro_batch, tokenizer.eos_token_id).items()
            }
            with accelerator.accumulate(model), accelerator.autocast():
                summed = packed_loss_sum(model, batch, keep_only_targets, fused)
                accelerator.backward(summed * scale)
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm or float("inf"))
                optimizer.step()
                # CPU: keep the gradient buffers (fresh ones fault in page by page); GPU: free them for the activations
                optimizer.zero_grad(set_to_none=accelerator.device.type != "cpu")
            loss_sum += summed.detach()
        loss_value = accelerator.reduce(loss_sum, "sum").item() / this.n_targets
        tokens_seen, targets_seen = tokens_seen + this.n_tokens, targets_seen + this.n_targets
        done = step + 1
        if metrics is not None and (done % t.logging_every == 0 or done == total):
            seconds = time.perf_counter() - tick
            metrics.append(
                {
                    "step": done,
                    "epoch": round(done / plan.steps_per_epoch, 4),
                    "loss": loss_value,
                    "lr": lr,
                    "grad_norm": None if grad_norm is None else float(grad_norm),
                    "tokens": tokens_seen,
                    "target_tokens": targets_seen,
                    "step_tokens": this.n_tokens,
                    "step_examples": this.n_examples,
                    "tokens_per_s": this.n_tokens / seconds,
                    "elapsed_s": previous_seconds + time.perf_counter() - began,
                }
            )
        if t.checkpoint_every and done % t.checkpoint_every == 0 and done < total:
            ckpt.save_checkpoint(
                accelerator,
                output,
                done,
                {
                    "step": done,
                    "resume_key": resume_key(recipe),
                    "tokens_fingerprint": data.tokens_fingerprint,
                    "seconds": previous_seconds + time.perf_counter() - began,
                    "loss": loss_value,
                },
                t.keep_checkpoints,
            )

    seconds = previous_seconds + time.perf_counter() - began
    provenance = {
        "recipe": {"name": recipe.name, "digest": recipe.digest(), "resolved": recipe.model_dump(mode="json")},
        "data": {
            "dataset": recipe.data.dataset,
            "origins": data.origins,
            "n_records": data.n_records,
            "n_examples": len(data.examples),
            "n_truncated": data.n_truncated,
            "n_without_targets": data.n_without_targets,
            "fingerprint": data.fingerprint,
            "tokens_fingerprint": data.tokens_fingerprint,
            "n_tokens": data.n_tokens,
            "n_target_tokens": data.n_targets,
        },
        "code": code_version(),
        "training": {
            "steps": total,
            "epochs": total / plan.steps_per_epoch,
            "final_loss": loss_value,
            "tokens_seen": tokens_seen,
            "target_tokens_seen": targets_seen,
            "seconds": round(seconds, 2),
            "resumed_from_step": start_step or None,
            "world_size": world,
            "device": accelerator.device.type,
            "precision": "fp32" if accelerator.mixed_precision == "no" else accelerator.mixed_precision,
            "distributed": str(accelerator.distributed_type),
            "attn_implementation": attn,
            "micro_batch_tokens": t.micro_batch_tokens,
            "loss": loss_note,
            "trained_parameters": "all but the embeddings" if t.freeze_embeddings else "all",
            "trainable_parameter_count": sum(  # ZeRO-3 leaves an empty placeholder; ds_numel is the full size
                getattr(p, "ds_numel", p.numel())
                for p in accelerator.unwrap_model(model).parameters()
                if p.requires_grad
            ),
            "accumulation": plan.accumulation,
            "packing_isolation_max_change": isolation,
        },
    }
    ckpt.save_final_model(accelerator, model, tokenizer, output, provenance, render_model_card(provenance))
    return TrainResult(output, total, loss_value, tokens_seen, seconds)
