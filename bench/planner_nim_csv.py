"""Turn the NIM genai-perf dataset (nim.csv of the inference-GPU-cluster-sizing notebooks) into the
benchmark groups of `src/hearth/planner/data/benchmarks.yaml`: the figures copied, only their units converted
(ns → ms, rounded to 0.01 ms); genai-perf's means go to the p50 fields, its p95 to the p95 fields.

    git -C <clone of wbing520/ai-performance-engineering> show 0e25b2e236211ad01ed2221bd2c1cfa5b3f47b55:\
    code/ch10_inference/inference_gpu_cluster_sizing/dataset/nim.csv > nim.csv
    python bench/planner_nim_csv.py nim.csv >> src/hearth/planner/data/benchmarks.yaml
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict

URL = (
    "https://github.com/wbing520/ai-performance-engineering/blob/0e25b2e236211ad01ed2221bd2c1cfa5b3f47b55/"
    "code/ch10_inference/inference_gpu_cluster_sizing/dataset/nim.csv"
)
MODELS = {
    "meta-llama3-8b-instruct": ("meta-llama/Meta-Llama-3-8B-Instruct", "Llama-3-8B-Instruct"),
    "meta-llama3-70b-instruct": ("meta-llama/Meta-Llama-3-70B-Instruct", "Llama-3-70B-Instruct"),
}
GPUS = {"A100-SXM4-80GB": ("A100-80GB", "A100 SXM4 80GB"), "H100_80GB_HBM3": ("H100-80GB", "H100 80GB HBM3")}
COLUMNS = (
    "    columns: [prompt_tokens, output_tokens, concurrency, requests_per_s, output_tokens_per_s,"
    " ttft_ms_p50,\n              ttft_ms_p95, itl_ms_p50, itl_ms_p95, e2e_ms_p50, e2e_ms_p95]"
)


def _ms(ns: str) -> float:
    return round(float(ns) / 1e6, 2)


def _point(r: dict[str, str]) -> list[float | int]:
    return [
        int(r["input_config-synthetic_input_tokens_mean"]),
        int(r["input_config-output_tokens_mean"]),
        int(r["input_config-concurrency"]),
        round(float(r["request_throughput-avg"]), 4),
        round(float(r["output_token_throughput-avg"]), 2),
        _ms(r["time_to_first_token-avg"]),
        _ms(r["time_to_first_token-p95"]),
        _ms(r["inter_token_latency-avg"]),
        _ms(r["inter_token_latency-p95"]),
        _ms(r["request_latency-avg"]),
        _ms(r["request_latency-p95"]),
    ]


def groups(path: str) -> str:
    """The YAML text of one group per (model, GPU, count, precision), points sorted by shape and load."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_config: dict[tuple[str, str, int, str], list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        key = (
            r["task_inputs-model"],
            r["task_inputs-GPU"],
            int(r["task_inputs-n_gpus"]),
            r["task_inputs-precision"],
        )
        by_config[key].append((line, r))
    out = []
    for (model, gpu, count, precision), items in sorted(by_config.items()):
        model_id, model_name = MODELS[model]
        gpu_name, gpu_label = GPUS[gpu]
        out += [
            f"  - model_id: {model_id}",
            f"    quantization: {precision}",
            f"    gpu: {gpu_name}",
            f"    gpu_count: {count}",
            '    source: "NVIDIA NIM genai-perf sweep (inference_gpu_cluster_sizing dataset/nim.csv)"',
            f'    source_url: "{URL}"',
            "    measured_on: 2024-07-01",
            "    kind: measured",
            "    mode: online",
            f'    engine: "NVIDIA NIM for {model_name} (TensorRT-LLM backend, NIM_TRT-LLM)"',
            '    method: "genai-perf closed-loop concurrency sweep, streaming chat, synthetic prompts'
            ' (stddev 0), fixed output length; avg stored as p50"',
            f'    hardware_label: "{count}x {gpu_label}, NIM {precision} TP{count}"',
            COLUMNS,
            "    points:",
        ]
        items.sort(key=lambda item: (*_point(item[1])[:3], item[0]))
        for line, r in items:
            out.append(f"      - [{', '.join(str(v) for v in _point(r))}]  # csv line {line}")
    return "\n".join(out)


if __name__ == "__main__":
    print(groups(sys.argv[1]))
