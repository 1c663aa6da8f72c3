"""Log-probabilities of continuations under a transformers causal LM.

Two implementations of one contract (per-token natural-log probabilities of each continuation
given its context):

* `score_token_ids` - the plain reference: right-padded batches of whole sequences, logits over
  the full vocabulary at every position. Simple and obviously right; the hf backend's default.
* `score_token_ids_fast` - does only the work the answer needs: each distinct context (one
  instruction scored against several responses) runs through the model once and its KV cache is
  reused; continuations of many contexts are batched in length buckets over their stacked
  caches; the output projection and log-softmax run only at the positions whose next token is
  scored. For Gemma 3 (vocabulary 262k) the output layer costs
  more than the rest of the model, so skipping it at prompt positions is most of the gain.
  Models whose structure it does not know fall back to the plain path with a warning.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .tokenization import TokenPair
from .transformers_compat import accepts_logits_to_keep, cache_keyword, output_cache

# Rows of the output projection computed together (each pass over the weights serves this many).
LOGIT_ROWS_PER_CHUNK = 1024
# Vocabulary entries per block on a CPU: a [rows, block] float32 block stays in the core's cache.
VOCAB_BLOCK_CPU = 4096
# Logits held at once (rows x block): bounds memory where the block is the whole vocabulary (GPU).
LOGIT_MAX_ELEMENTS = 64 * 2**20
# The fast path re-checks two pairs with the plain path and falls back beyond these gaps: per
# token in float32; per sequence mean in half precision, where merely batching differently
# already moves single tokens by up to ~0.4 nats.
SELF_CHECK_TOLERANCE = 1e-3
SELF_CHECK_TOLERANCE_HALF = 0.1
# Prompts whose caches are held at once (their continuations are length-bucketed together).
PROMPTS_PER_WINDOW = 64
# A batch closes before its padding exceeds this share of its tokens: on a CPU a forward pass of a
# few sequences is as efficient per token as a wide one, so padding is pure waste.
MAX_PADDING_SHARE = 0.1


def _check_pairs(pairs: Sequence[TokenPair]) -> None:
    for index, (ctx, cont) in enumerate(pairs):
        if not ctx:
            raise ValueError(f"pair {index} has an empty context: a causal LM needs at least one token to condition on")
        if not cont:
            raise ValueError(f"pair {index} has an empty continuation: nothing to score")


@torch.no_grad()
def score_token_ids(model, pairs: Sequence[TokenPair], batch_size: int = 8) -> list[list[float]]:
    """Per-token log-probabilities of each continuation (natural log), one list per pair."""
    _check_pairs(pairs)
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    results: list[list[float]] = [[] for _ in pairs]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        seqs = [pairs[i][0] + pairs[i][1] for i in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, i in enumerate(chunk):
            ctx, cont = pairs[i]
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=device)
            targets = torch.tensor(cont, device=device)
            results[i] = logprobs[row, positions, targets].tolist()
    return results


# -- the fast path ----------------------------------------------------------------------------


def fast_path_problem(model) -> str | None:
    """Why the fast path cannot split this model into body + output layer (None when it can).

    It needs `model.base_model` to return last hidden states and `lm_head` to map them to
    logits, with no post-processing other than Gemma's final logit soft-capping.
    """
    body = getattr(model, "base_model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or body is model or head is None:
        return f"{type(model).__name__} has no separate base model and output layer"
    config = model.config
    for name in ("logit_scale", "logits_scaling", "output_logits_scale"):
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            return f"{type(model).__name__} rescales its logits ({name}={value})"
    return None


class _OutputLayer:
    """lm_head (+ Gemma's soft-capping) and log-softmax, applied only to the rows asked for.

    On a CPU the vocabulary is processed in blocks small enough to stay in cache, with a running
    (online) log-sum-exp: the soft-capping, max, exp and sum then read cache, not memory, and a
    [rows, 262k] logits tensor is never materialised. Block logits go into one reused buffer (a
    fresh tensor per block would cost page faults on every allocation). On an accelerator the
    whole vocabulary is one block: one large kernel beats many small ones there.
    """

    def __init__(self, model) -> None:
        self.head = model.get_output_embeddings()
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self._raw: torch.Tensor | None = None  # matmul output, in the head's dtype
        self._f32: torch.Tensor | None = None  # float32 logits (the same buffer for a float32 head)

    def _block_logits(self, hidden: torch.Tensor, weight: torch.Tensor, start: int, width: int) -> torch.Tensor:
        """Soft-capped float32 logits of vocabulary entries [start, start + width) for each row."""
        rows = hidden.shape[0]
        if self._raw is None or self._raw.shape[0] < rows or self._raw.shape[1] < width:
            shape = (rows, width)
            self._raw = torch.empty(shape, dtype=weight.dtype, device=weight.device)
            self._f32 = (
                self._raw
                if weight.dtype == torch.float32
                else torch.empty(shape, dtype=torch.float32, device=weight.device)
            )
        raw, logits = self._raw[:rows, :width], self._f32[:rows, :width]
        torch.mm(hidden, weight[start : start + width].t(), out=raw)
        if self.head.bias is not None:
            raw.add_(self.head.bias[start : start + width])
        if logits is not raw:
            logits.copy_(raw)
        if self.softcap is not None:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits

    def logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for each row of `hidden` [N, d], computed in float32 after the projection."""
        weight = getattr(self.head, "weight", None)
        if not isinstance(self.head, torch.nn.Linear) or weight is None:
            return self._module_logprobs(hidden, targets)
        vocab = weight.shape[0]
        block = min(vocab, VOCAB_BLOCK_CPU) if hidden.device.type == "cpu" else vocab
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        max_rows = max(1, min(LOGIT_ROWS_PER_CHUNK, LOGIT_MAX_ELEMENTS // block))
        n_chunks = -(-hidden.shape[0] // max_rows)
        size = -(-hidden.shape[0] // max(n_chunks, 1))  # equal chunks: no small leftover chunk
        for start in range(0, hidden.shape[0], size):
            rows = slice(start, start + size)
            chunk, wanted = hidden[rows].to(weight.dtype), targets[rows]
            n = chunk.shape[0]
            peak = torch.full((n,), float("-inf"), device=hidden.device)
            total = torch.zeros(n, device=hidden.device)
            picked = torch.empty(n, device=hidden.device)
            for first in range(0, vocab, block):
                logits = self._block_logits(chunk, weight, first, min(block, vocab - first))
                here = ((wanted >= first) & (wanted < first + logits.shape[1])).nonzero().squeeze(1)
                if here.numel():
                    picked[here] = logits[here, wanted[here] - first]
                new_peak = torch.maximum(peak, logits.amax(1))
                # Running log-sum-exp: rescale the sum so far to the new peak, add this block.
                total.mul_((peak - new_peak).exp_()).add_(logits.sub_(new_peak[:, None]).exp_().sum(1))
                peak = new_peak
            out[rows] = picked - (total.log() + peak)
        return out

    def _module_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """An unusual head module: let it compute its logits as usual, a chunk of rows at a time."""
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], LOGIT_ROWS_PER_CHUNK):
            rows = slice(start, start + LOGIT_ROWS_PER_CHUNK)
            logits = self.head(hidden[rows]).float()
            if self.softcap is not None:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            out[rows] = logits.gather(1, targets[rows, None]).squeeze(1) - logits.logsumexp(1)
        return out


def _group_by_context(pairs: Sequence[TokenPair]) -> list[tuple[list[int], list[int]]]:
    """[(context ids, indices of the pairs with that context)], in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (ctx, _) in enumerate(pairs):
        groups.setdefault(tuple(ctx), []).append(index)
    return [(list(ctx), members) for ctx, members in groups.items()]


def length_buckets(lengths: Sequence[int], max_rows: int, max_padding: float = MAX_PADDING_SHARE) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    A batch holds at most `max_rows` items and closes before padding to its longest item would
    waste more than `max_padding` of the batch's tokens.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if batch is not None and len(batch) < max_rows:
            width = lengths[batch[0]]
            used = sum(lengths[j] for j in batch) + lengths[i]
            if 1 - used / (width * (len(batch) + 1)) <= max_padding:
                batch.append(i)
                continue
        batches.append([i])
    return batches


@dataclass
class _Prefix:
    """A prompt run once through the body: its per-layer keys/values and last hidden state."""

    length: int
    keys: list[torch.Tensor]  # per layer [kv_heads, length, head_dim]
    values: list[torch.Tensor]
    last_hidden: torch.Tensor  # [hidden]: predicts every continuation's first token


def _cache_layers(cache) -> list:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"{type(cache).__name__} exposes no per-layer keys/values")
    return layers


@torch.no_grad()
def _run_prefixes(body, prompts: list[list[int]], batch_size: int, device) -> list[_Prefix]:
    """Run prompts through the body in left-padded batches and keep each one's cache."""
    out: list[_Prefix | None] = [None] * len(prompts)
    for chunk in length_buckets([len(p) for p in prompts], batch_size):
        width = len(prompts[chunk[0]])
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):  # left padding: every prompt ends in the last column
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        result = body(
            input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), use_cache=True
        )
        layers = _cache_layers(output_cache(result))
        for row, i in enumerate(chunk):
            n = len(prompts[i])
            out[i] = _Prefix(
                n,
                [layer.keys[row, :, width - n :] for layer in layers],
                [layer.values[row, :, width - n :] for layer in layers],
                result.last_hidden_state[row, -1],
            )
    return out  # type: ignore[return-value]


class _HeadQueue:
    """Collects (pair, hidden states, targets) from many body batches and runs the output layer
    once per LOGIT_ROWS_PER_CHUNK rows: each pass over the (large) output weights serves as
    many rows as possible."""

    def __init__(self, head: _OutputLayer, results: list[list[float]], device) -> None:
        self.head, self.results, self.device = head, results, device
        self.pending: list[tuple[int, torch.Tensor, list[int]]] = []
        self.rows = 0

    def add(self, index: int, hidden: torch.Tensor, targets: list[int]) -> None:
        self.pending.append((index, hidden, targets))
        self.rows += len(targets)
        if self.rows >= LOGIT_ROWS_PER_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        hidden = torch.cat([h for _, h, _ in self.pending])
        targets = torch.tensor([t for _, _, ts in self.pending for t in ts], device=self.device)
        values = self.head.logprobs(hidden, targets).tolist()
        offset = 0
        for index, _, ts in self.pending:
            self.results[index] = values[offset : offset + len(ts)]
            offset += len(ts)
        self.pending, self.rows = [], 0


@torch.no_grad()
def _rows_hidden(model, rows: list[tuple[_Prefix, list[int]]]) -> list[torch.Tensor]:
    """Hidden states predicting each continuation's tokens [len(cont), d], each continuation after
    its own (already computed) prompt.

    The prompts' caches are stacked, left-padded to the longest, into one KV cache; each row's
    positions continue from its own prompt length, and the attention mask hides the padding.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    width_p = max(prefix.length for prefix, _ in rows)
    width_c = max(len(cont) for _, cont in rows) - 1  # a continuation's last token is only a target
    # Each continuation's first token is predicted by its prompt's last hidden state.
    firsts = [prefix.last_hidden[None] for prefix, _ in rows]
    if width_c <= 0:
        return firsts
    n_layers = len(rows[0][0].keys)
    cache_data = []
    for layer in range(n_layers):
        sample = rows[0][0].keys[layer]
        keys = sample.new_zeros((len(rows), sample.shape[0], width_p, sample.shape[-1]))
        values = torch.zeros_like(keys)
        for row, (prefix, _) in enumerate(rows):
            keys[row, :, width_p - prefix.length :] = prefix.keys[layer]
            values[row, :, width_p - prefix.length :] = prefix.values[layer]
        cache_data.append((keys, values))
    cache = DynamicCache(ddp_cache_data=cache_data, config=model.config)

    ids = torch.zeros((len(rows), width_c), dtype=torch.long)
    mask = torch.zeros((len(rows), width_p + width_c), dtype=torch.long)
    positions = torch.zeros((len(rows), width_c), dtype=torch.long)
    for row, (prefix, cont) in enumerate(rows):
        inputs = cont[:-1]
        ids[row, : len(inputs)] = torch.tensor(inputs)
        mask[row, width_p - prefix.length : width_p + len(inputs)] = 1
        positions[row] = torch.arange(prefix.length, prefix.length + width_c)
    body = model.base_model
    hidden = body(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        **{cache_keyword(body): cache},
    ).last_hidden_state
    return [
        torch.cat([first, hidden[row, : len(cont) - 1]]) for row, (first, (_, cont)) in enumerate(zip(firsts, rows))
    ]


@torch.no_grad()
def _score_group(
    model, queue: _HeadQueue, ctx: list[int], conts: list[list[int]], members: list[int], batch_size: int
) -> None:
    """Continuations sharing one long context, scored with that context's own (unpadded) cache.

    Used where stacking padded caches would change a sliding-window layer's view: no padding
    ever sits inside a window here, so every layer sees exactly what the plain path sees.
    """
    device = next(model.parameters()).device
    body = model.base_model
    prefix = body(input_ids=torch.tensor([ctx], device=device), use_cache=True)
    last_hidden = prefix.last_hidden_state[0, -1:]
    prefix_cache = output_cache(prefix)

    for chunk in length_buckets([len(c) for c in conts], batch_size):
        width = max(len(conts[i]) for i in chunk) - 1
        hidden = None
        if width > 0:
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), len(ctx) + width), dtype=torch.long)
            mask[:, : len(ctx)] = 1
            for row, i in enumerate(chunk):
                ids[row, : len(conts[i]) - 1] = torch.tensor(conts[i][:-1])
                mask[row, len(ctx) : len(ctx) + len(conts[i]) - 1] = 1
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(chunk))
            hidden = body(
                input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True, **{cache_keyword(body): cache}
            ).last_hidden_state
        for row, i in enumerate(chunk):
            rows = last_hidden if hidden is None else torch.cat([last_hidden, hidden[row, : len(conts[i]) - 1]])
            queue.add(members[i], rows, conts[i])


def sliding_window(model) -> int | None:
    config = model.config
    window = getattr(config, "sliding_window", None)
    kinds = getattr(config, "layer_types", None)
    if window and (kinds is None or "sliding_attention" in kinds or getattr(config, "use_sliding_window", True)):
        return int(window)
    return None


def _takes_stacked_path(model, pairs: Sequence[TokenPair]) -> list[bool]:
    """Which pairs take the stacked-cache path. Stacked caches are left-padded; inside a sliding
    window that padding would crowd out real tokens, so pairs that could reach the window take
    the per-prompt path instead."""
    window = sliding_window(model)
    return [window is None or len(ctx) + len(cont) <= window // 2 for ctx, cont in pairs]


@torch.no_grad()
def _score_fast(
    model, head: _OutputLayer, pairs: Sequence[TokenPair], batch_size: int, progress: bool
) -> list[list[float]]:
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    results: list[list[float]] = [[] for _ in pairs]
    fits = _takes_stacked_path(model, pairs)
    short = _group_by_context([p if ok else ([], []) for p, ok in zip(pairs, fits)])
    short = [(ctx, members) for ctx, members in short if ctx]
    long = _group_by_context([p if not ok else ([], []) for p, ok in zip(pairs, fits)])
    long = [(ctx, members) for ctx, members in long if ctx]
    queue = _HeadQueue(head, results, device)
    with tqdm(total=len(pairs), desc="scoring", unit="seq", disable=not progress) as bar:
        for start in range(0, len(short), PROMPTS_PER_WINDOW):
            window_groups = short[start : start + PROMPTS_PER_WINDOW]
            prefixes = _run_prefixes(model.base_model, [ctx for ctx, _ in window_groups], batch_size, device)
            rows = [(prefixes[g], i) for g, (_, members) in enumerate(window_groups) for i in members]
            # Length buckets across prompts: each row brings its own prompt's cache.
            for bucket in length_buckets([len(pairs[i][1]) for _, i in rows], batch_size):
                batch = [rows[b] for b in bucket]
                for (_, i), hidden in zip(batch, _rows_hidden(model, [(p, pairs[i][1]) for p, i in batch])):
                    queue.add(i, hidden, pairs[i][1])
                bar.update(len(batch))
            queue.flush()  # this window's prompt caches can then be freed
        for ctx, members in long:
            _score_group(model, queue, ctx, [pairs[i][1] for i in members], members, batch_size)
            bar.update(len(members))
        queue.flush()
    return results


@torch.no_grad()
def score_token_ids_fast(
    model, pairs: Sequence[TokenPair], batch_size: int = 8, *, self_check: bool = True, progress: bool = False
) -> list[list[float]]:
    """Same answer as `score_token_ids` (within float rounding), doing only the needed work.

    With `self_check`, the shortest pair of each path taken is scored again by the model's own
    forward pass; if they disagree by more than SELF_CHECK_TOLERANCE per token (SELF_CHECK_TOLERANCE_HALF in mean
    log-probability for bfloat16/float16 models), which means an architecture that post-processes
    its logits or caches in a way we do not know, everything is scored by the plain path
    instead, with a warning.
    """
    _check_pairs(pairs)
    if not pairs:
        return []
    problem = fast_path_problem(model)
    results = None
    if problem is None:
        head = _OutputLayer(model)
        try:
            results = _score_fast(model, head, pairs, batch_size, progress)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError, NotImplementedError, RuntimeError) as exc:
            # an unusual cache or forward signature (a bug of ours, e.g. a NameError, still raises)
            problem = f"its forward pass does not accept a reused KV cache ({type(exc).__name__}: {exc})"
        else:
            if self_check:
                checked = _check_indices(pairs, _takes_stacked_path(model, pairs))
                plain = [_model_logprobs(model, *pairs[i]) for i in checked]
                gap, tolerance, unit = _self_check_gap(model, [results[i] for i in checked], plain)
                if gap > tolerance:
                    problem = f"the fast path differs from the plain one by {gap:.2e} {unit}"
    if problem is not None:
        warnings.warn(f"fast scoring unavailable, using the plain path: {problem}", RuntimeWarning, stacklevel=2)
        return score_token_ids(model, pairs, batch_size=batch_size)
    return results


def _self_check_gap(model, fast: list[list[float]], plain: list[list[float]]) -> tuple[float, float, str]:
    """(gap, tolerance, unit) between the fast and plain scores of the re-checked pairs."""
    if next(model.parameters()).dtype in (torch.float16, torch.bfloat16):
        tokens = sum(len(f) for f in fast)  # pooled, so single noisy tokens average out
        gap = abs(sum(map(sum, fast)) - sum(map(sum, plain))) / tokens
        return gap, SELF_CHECK_TOLERANCE_HALF, "in mean log-probability"
    gap = max(abs(a - b) for f, p in zip(fast, plain) for a, b in zip(f, p))
    return gap, SELF_CHECK_TOLERANCE, "per token"


def _check_indices(pairs: Sequence[TokenPair], stacked: Sequence[bool]) -> list[int]:
    """The pairs to re-check: the shortest of each path taken (cheap, and each path is exercised),
    preferring continuations of two or more tokens, whose later tokens read the reused cache."""
    picked = set()
    for path in (True, False):
        members = [i for i, s in enumerate(stacked) if s == path]
        if members:
            picked.add(min(members, key=lambda i: (len(pairs[i][1]) < 2, len(pairs[i][0]) + len(pairs[i][1]))))
    return sorted(picked)


@torch.no_grad()
def _model_logprobs(model, ctx: list[int], cont: list[int]) -> list[float]:
    """One pair through the model's own forward (its own logit post-processing included), with
    logits only where a continuation token is predicted when the model supports `logits_to_keep`."""
    device = next(model.parameters()).device
    ids = torch.tensor([ctx + cont], device=device)
    if accepts_logits_to_keep(model):
        logits = model(input_ids=ids, logits_to_keep=len(cont) + 1).logits[0, :-1]
    else:
        logits = model(input_ids=ids).logits[0, len(ctx) - 1 : -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return logprobs[torch.arange(len(cont), device=device), torch.tensor(cont, device=device)].tolist()
