"""Planner knowledge base tables: model catalog, GPU profiles and benchmark rows.

The knowledge base is shared by every user (it describes public models and hardware), so these tables carry no
owner column; only admins change the catalog, anyone signed in reads it and asks for plans."""

from __future__ import annotations

from datetime import date

from sqlalchemy import JSON, Date, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, new_id


class CatalogModel(TimestampMixin, Base):
    __tablename__ = "planner_models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # Hugging Face id
    family: Mapped[str] = mapped_column(String(64), nullable=False)
    params_b: Mapped[float] = mapped_column(Float, nullable=False)
    active_params_b: Mapped[float] = mapped_column(
        Float, nullable=False
    )  # < params_b for mixtures of experts
    layers: Mapped[int] = mapped_column(Integer, nullable=False)
    hidden_size: Mapped[int] = mapped_column(Integer, nullable=False)
    attention_heads: Mapped[int] = mapped_column(Integer, nullable=False)
    kv_heads: Mapped[int] = mapped_column(Integer, nullable=False)
    head_dim: Mapped[int] = mapped_column(Integer, nullable=False)
    context_length: Mapped[int] = mapped_column(Integer, nullable=False)
    license: Mapped[str] = mapped_column(String(64), nullable=False)
    quantizations: Mapped[list] = mapped_column(JSON, nullable=False)
    tasks: Mapped[list] = mapped_column(JSON, nullable=False)
    quality: Mapped[float] = mapped_column(Float, nullable=False)  # 0-100, see quality_source
    quality_source: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # where the architecture figures come from
    checkpoints: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # quantization → checkpoint id


class GpuProfile(TimestampMixin, Base):
    __tablename__ = "planner_gpus"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "H100-80GB"
    product_label: Mapped[str] = mapped_column(String(128), nullable=False)  # nvidia.com/gpu.product
    memory_gb: Mapped[float] = mapped_column(Float, nullable=False)
    bandwidth_gbs: Mapped[float] = mapped_column(Float, nullable=False)
    tflops_bf16: Mapped[float] = mapped_column(Float, nullable=False)  # dense, no sparsity
    tflops_fp8: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: no FP8 tensor cores
    interconnect_gbs: Mapped[float] = mapped_column(Float, nullable=False)  # GPU-to-GPU, one direction
    max_per_node: Mapped[int] = mapped_column(Integer, nullable=False)
    price_per_hour: Mapped[float] = mapped_column(Float, nullable=False)  # USD per GPU-hour
    price_source: Mapped[str] = mapped_column(Text, nullable=False)
    price_date: Mapped[date] = mapped_column(Date, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)


class BenchmarkRow(TimestampMixin, Base):
    __tablename__ = "planner_benchmarks"
    __table_args__ = (Index("ix_planner_benchmarks_model_gpu", "model_id", "gpu"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False)
    quantization: Mapped[str] = mapped_column(String(32), nullable=False)
    gpu: Mapped[str] = mapped_column(String(64), nullable=False)
    gpu_count: Mapped[int] = mapped_column(Integer, nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    concurrency: Mapped[float | None] = mapped_column(Float, nullable=True)
    request_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_ms_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_ms_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    itl_ms_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms_p99: Mapped[float | None] = mapped_column(Float, nullable=True)
    requests_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    output_tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    measured_on: Mapped[date] = mapped_column(Date, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # measured | estimated | synthetic
    hardware_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    endpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="online", server_default="online")
    engine: Mapped[str | None] = mapped_column(Text, nullable=True)
    method: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Rows seeded from the package's data file carry a stable key so a restart never inserts them twice.
    seed_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
