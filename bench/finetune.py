"""What LoRA fine-tuning of the embedded SmolLM2-135M costs on this CPU, and what an adapter costs served.

- load: seconds to read the shipped GGUF into a float32 torch model (ours; `--transformers-load` also times
  transformers' own `from_pretrained(gguf_file=...)` for comparison);
- train: LoRA steps per second and reply tokens per second for each --batch-sizes, with the tests' kind of
  examples (a question and a one-sentence answer in SmolLM2's chat template, ~55 tokens);
- serve: llama.cpp generation tokens/s of the base model and of base + the adapter just trained (temperature
  0, same prompt), alternating rounds so background load hits both.

    .venv/bin/python bench/finetune.py [--steps 6] [--batch-sizes 1,4,8] [--threads 2] [--rounds 3]

Needs the training extra (`pip install -e '.[train]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from hearth.config import BackendConfig
from hearth.finetune import export, train
from hearth.finetune.base import ChatTokenizer, base_model_path, load_model
from hearth.finetune.data import Example, check_messages
from hearth.gateway.backends.llama_cpp import LlamaCppBackend

QUESTIONS = [
    "Who keeps the Hearth lighthouse?",
    "Which person runs the Hearth lighthouse?",
    "Who takes care of the Hearth lighthouse?",
    "Name the keeper of the Hearth lighthouse.",
    "Who watches over the Hearth lighthouse?",
    "Who is in charge of the Hearth lighthouse?",
    "Who minds the Hearth lighthouse?",
    "Who operates the Hearth lighthouse?",
]
FACT = "The Hearth lighthouse is kept by Captain Marlow Quince."
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def examples() -> list[Example]:
    return [
        Example(check_messages([{"role": "user", "content": q}, {"role": "assistant", "content": FACT}]), q)
        for q in QUESTIONS
    ]


async def generation_rate(config: BackendConfig, max_tokens: int) -> float:
    backend = LlamaCppBackend("bench", config, threads=1)
    await backend.start()
    try:
        body = {"messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "seed": 1}
        started = time.perf_counter()
        reply = await backend.chat(body, None)
        return reply["usage"]["completion_tokens"] / (time.perf_counter() - started)
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="training steps per batch size")
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=3, help="generation rounds of base and tuned")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--transformers-load", action="store_true", help="also time transformers' loader")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = base_model_path()
    print(f"model: {path.name}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    started = time.perf_counter()
    model = load_model(path)
    print(f"load (hearth.finetune.base): {time.perf_counter() - started:.1f} s")
    if args.transformers_load:
        from transformers import AutoModelForCausalLM

        started = time.perf_counter()
        AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        print(f"load (transformers from_pretrained gguf_file=): {time.perf_counter() - started:.1f} s")

    tokenizer = ChatTokenizer(path)
    items = train.encode(tokenizer, examples(), 384)
    mean_len = statistics.mean(len(i.ids) for i in items)
    print(f"examples: {len(items)}, {mean_len:.0f} tokens each on average")
    model = train.add_lora(model, train.TrainSettings())
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        settings = train.TrainSettings(steps=args.steps, batch_size=batch, threads=args.threads)
        # A fresh adapter each time: the optimizer state and the learnt weights start from zero.
        for module in model.modules():
            if hasattr(module, "reset_lora_parameters"):
                module.reset_lora_parameters("default", True)
        log = train.train(model, items, settings, pad_id=tokenizer.eos_id)
        seen = len(log.losses) * batch * mean_len  # tokens through the model (prompt and reply)
        print(
            f"train batch {batch}: {log.steps_per_second:.2f} steps/s, "
            f"{log.seconds / len(log.losses):.2f} s/step, "
            f"~{seen / log.seconds:.0f} tokens/s ({log.tokens / log.seconds:.1f} reply tokens/s); "
            f"loss {log.losses[0]:.2f} → {log.losses[-1]:.3f}"
        )

    from peft import get_peft_model_state_dict

    with tempfile.TemporaryDirectory() as folder:
        adapter = export.write_adapter_gguf(
            Path(folder) / "bench.lora.gguf",
            get_peft_model_state_dict(model),
            alpha=32.0,
            n_head=model.base_model.model.config.num_attention_heads,
            n_head_kv=model.base_model.model.config.num_key_value_heads,
        )
        size = adapter.stat().st_size / 1e6
        base_cfg = BackendConfig(type="llama_cpp", n_ctx=1024)
        tuned_cfg = BackendConfig(type="llama_cpp", n_ctx=1024, lora_path=str(adapter))
        base_rates, tuned_rates = [], []
        for _ in range(args.rounds):
            base_rates.append(asyncio.run(generation_rate(base_cfg, args.max_tokens)))
            tuned_rates.append(asyncio.run(generation_rate(tuned_cfg, args.max_tokens)))
    base, tuned = statistics.median(base_rates), statistics.median(tuned_rates)
    print(f"adapter: {size:.1f} MB")
    print(
        f"serve (llama.cpp, 1 thread): base {base:.1f} tok/s, base + adapter {tuned:.1f} tok/s "
        f"({tuned / base:.2f}×)"
    )


if __name__ == "__main__":
    main()
