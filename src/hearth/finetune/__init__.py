"""LoRA fine-tuning of the embedded chat model, and serving the result (issue 16, seed 003's fine-tuning).

data (JSONL or a user's conversations → checked examples, train/held-out split) → base (the shipped GGUF
read into a float32 torch model; llama.cpp's tokenizer and chat template) → train (LoRA with peft on CPU) →
export (the adapter as a GGUF llama.cpp loads with `lora_path`) → eval (held-out loss, answers of base and
tuned) → serve (a llama_cpp backend with the adapter and an alias on it). `runner.run_finetune` does it all.

Importing this package is cheap: torch, transformers and peft (the `hearth[train]` extra) load only when
training runs.
"""

from hearth.finetune.data import DataError, Example, from_conversations, load_jsonl, split
from hearth.finetune.runner import (
    FinetuneConfig,
    FinetuneResult,
    MissingTrainExtra,
    check_train_extra,
    run_finetune,
)
from hearth.finetune.train import TrainSettings

__all__ = [
    "DataError",
    "Example",
    "FinetuneConfig",
    "FinetuneResult",
    "MissingTrainExtra",
    "TrainSettings",
    "check_train_extra",
    "from_conversations",
    "load_jsonl",
    "run_finetune",
    "split",
]
