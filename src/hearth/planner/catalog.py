"""The knowledge base's seed files (model catalog, GPU profiles, benchmark rows) and plain records of them.

The files under `data/` are the seed and the citation of every figure; at start-up the planner writes them to
its tables (`service.seed_knowledge_base`) and from then on reads the tables, so rows the bench adds count
too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

from hearth.planner.schemas import BenchmarkRowIn


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    params_b: float
    active_params_b: float
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    license: str
    quantizations: tuple[str, ...]
    tasks: tuple[str, ...]
    quality: float
    quality_source: str
    source: str
    checkpoints: dict[str, str] | None = None  # quantization → pre-quantized checkpoint id (e.g. AWQ)

    def checkpoint(self, quantization: str) -> str:
        """The Hugging Face id vLLM loads for a quantization (FP8 is quantized on load from the bf16 one)."""
        return (self.checkpoints or {}).get(quantization, self.id)


@dataclass(frozen=True)
class GpuSpec:
    name: str
    product_label: str
    memory_gb: float
    bandwidth_gbs: float
    tflops_bf16: float
    tflops_fp8: float | None
    interconnect_gbs: float
    max_per_node: int
    price_per_hour: float
    price_source: str
    price_date: date
    source: str

    def supports(self, quantization: str) -> bool:
        """FP8 needs FP8 tensor cores (Ada, Hopper and later); the other formats run everywhere."""
        return quantization != "fp8" or self.tflops_fp8 is not None

    def peak_flops(self, quantization: str) -> float:
        """Dense peak FLOP/s for the quantization's compute type (int8 runs at the FP8/INT8 tensor rate)."""
        from hearth.planner.perf import QUANTIZATIONS

        kind = QUANTIZATIONS[quantization][1]
        if kind == "fp8":
            return (self.tflops_fp8 or 2 * self.tflops_bf16) * 1e12
        return self.tflops_bf16 * 1e12


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("hearth.planner").joinpath("data", name).read_text())


@cache
def seed_models() -> tuple[ModelSpec, ...]:
    out = []
    for m in _load("models.yaml")["models"]:
        out.append(
            ModelSpec(
                id=m["id"],
                family=m["family"],
                params_b=float(m["params_b"]),
                active_params_b=float(m.get("active_params_b", m["params_b"])),
                layers=m["layers"],
                hidden_size=m["hidden_size"],
                attention_heads=m["attention_heads"],
                kv_heads=m["kv_heads"],
                head_dim=m["head_dim"],
                context_length=m["context_length"],
                license=m["license"],
                quantizations=tuple(m["quantizations"]),
                tasks=tuple(m["tasks"]),
                quality=float(m["quality"]),
                quality_source=m["quality_source"],
                source=m.get("source", f"config.json and model card of {m['id']} on Hugging Face"),
                checkpoints=m.get("checkpoints"),
            )
        )
    return tuple(out)


@cache
def same_architecture() -> dict[str, str]:
    """Model id outside the catalog → the catalog model whose architecture it shares (models.yaml)."""
    return dict(_load("models.yaml").get("same_architecture") or {})


@cache
def seed_gpus() -> tuple[GpuSpec, ...]:
    return tuple(GpuSpec(**g) for g in _load("gpus.yaml")["gpus"])


DESCRIPTIVE_FIELDS = ("mode", "engine", "method")


@cache
def seed_benchmarks() -> tuple[tuple[str, BenchmarkRowIn], ...]:
    """(seed key, row) for every point of every group in benchmarks.yaml."""
    out = []
    for group in _load("benchmarks.yaml")["groups"]:
        common = {k: v for k, v in group.items() if k not in ("columns", "points")}
        for point in group["points"]:
            row = BenchmarkRowIn(**common, **dict(zip(group["columns"], point, strict=True)))
            # The key leaves out the descriptive fields added later (mode, engine, method), so rows seeded
            # before them keep their key and are refreshed in place rather than inserted twice.
            identity = row.model_dump_json(exclude=set(DESCRIPTIVE_FIELDS))
            key = hashlib.sha256(identity.encode()).hexdigest()[:32]
            out.append((key, row))
    return tuple(out)
