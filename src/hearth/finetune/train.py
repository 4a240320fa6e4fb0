"""LoRA training on the CPU: the base weights stay frozen, small low-rank matrices beside q/k/v/o and the MLP
learn. Only the assistants' replies are learnt (the prompt is context). Loss is token-weighted cross-entropy,
the same number before and after training, on the training and the held-out examples."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hearth.finetune.base import ChatTokenizer
from hearth.finetune.data import DataError, Example

IGNORE = -100  # label of a token that is context, not a target (PyTorch's cross-entropy ignore_index)
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainSettings:
    steps: int = 30
    learning_rate: float = 2e-3  # high for LoRA, right for a few dozen steps on a 135M model
    rank: int = 16
    alpha: float = 32.0  # LoRA scale = alpha / rank
    batch_size: int = 8
    max_tokens: int = 384  # longer examples keep their last max_tokens tokens (the reply is at the end)
    seed: int = 0
    threads: int | None = None  # torch's CPU threads (None: torch's default, one per core)
    target_modules: tuple[str, ...] = TARGET_MODULES


@dataclass
class Encoded:
    ids: list[int]
    labels: list[int]  # IGNORE for context tokens
    source: str


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)  # each step's training loss
    seconds: float = 0.0
    tokens: int = 0  # target tokens seen

    @property
    def steps_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds else 0.0


def encode(tokenizer: ChatTokenizer, examples: Sequence[Example], max_tokens: int) -> list[Encoded]:
    out = []
    for example in examples:
        try:
            ids, targets = tokenizer.encode(list(example.messages))
        except ValueError as exc:
            raise DataError(f"{example.source}: {exc}") from None
        ids, targets = ids[-max_tokens:], targets[-max_tokens:]
        if not any(targets):
            raise DataError(
                f"{example.source}: the reply falls outside the last {max_tokens} tokens; fix: shorten the "
                "conversation or raise max_tokens"
            )
        labels = [t if target else IGNORE for t, target in zip(ids, targets, strict=True)]
        out.append(Encoded(ids, labels, example.source))
    return out


def _batch(items: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(e.ids) for e in items)
    ids = [e.ids + [pad_id] * (width - len(e.ids)) for e in items]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in items]
    mask = [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in items]
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def _loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed cross-entropy over the batch's target tokens, and how many there were. The vocabulary
    projection (49k × 576 for SmolLM2, a fifth of the model's compute) runs only at the positions that
    predict a target, not at every prompt token."""
    import torch.nn.functional as F

    # Token t predicts token t+1.
    labels = batch["labels"][:, 1:]
    where = labels != IGNORE
    hidden = _decoder(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    states = hidden.last_hidden_state[:, :-1, :][where]
    logits = _lm_head(model)(states)
    loss = F.cross_entropy(logits.float(), labels[where], reduction="sum")
    return loss, int(where.sum())


def _decoder(model: Any) -> Any:
    """The transformer body (embeddings and layers, no vocabulary head) under PEFT's wrapper, if any."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model


def _lm_head(model: Any) -> Any:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.lm_head


def full_logits(model: Any, ids: Sequence[int]) -> Any:
    """The model's logits at every position of one token sequence (no gradients), as a numpy array."""
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)])).logits[0].float().numpy()


def mean_loss(model: Any, items: Sequence[Encoded], *, pad_id: int, batch_size: int = 8) -> float:
    """Token-weighted mean cross-entropy of the replies (nats per token)."""
    import torch

    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            loss, n = _loss_sum(model, _batch(items[i : i + batch_size], pad_id))
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / count if count else math.nan


def add_lora(model: Any, settings: TrainSettings) -> Any:
    """The model wrapped by PEFT with fresh LoRA matrices (B = 0: at first it computes exactly the base)."""
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 a deprecated question (is_gradient_checkpointing): not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def train(
    model: Any,
    items: Sequence[Encoded],
    settings: TrainSettings,
    *,
    pad_id: int,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainLog:
    """`settings.steps` AdamW steps over shuffled mini-batches of `items` (epochs repeat as needed)."""
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)  # process-wide: a server runs training in a worker process
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    # Linear warm-up over the first tenth, then linear decay: steadier than a constant rate over few steps.
    warmup = max(1, settings.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / warmup, max(0.0, (settings.steps - step) / max(1, settings.steps - warmup))
        ),
    )
    log = TrainLog()
    order: list[int] = []
    model.train()
    started = time.perf_counter()
    for step in range(settings.steps):
        if len(order) < settings.batch_size:  # the next epoch, shuffled (a batch never exceeds the data)
            fresh = list(range(len(items)))
            rng.shuffle(fresh)
            order += fresh
        picked = [items[i] for i in order[: settings.batch_size]]
        del order[: settings.batch_size]
        loss_sum, n = _loss_sum(model, _batch(picked, pad_id))
        loss = loss_sum / max(1, n)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        log.losses.append(value)
        log.tokens += n
        if on_step is not None:
            on_step(step + 1, value)
    log.seconds = time.perf_counter() - started
    model.eval()
    return log
