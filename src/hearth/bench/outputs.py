"""A run's outputs: a console table (rich), JSON (the whole report), CSV (one line per load point) and a PNG
of the latency distributions and, for several load points, latency and throughput against load
(matplotlib, Agg)."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.table import Table

from hearth.bench.schemas import BenchmarkResult, BenchReport

METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
STATS = ("mean", "p50", "p90", "p95", "p99")


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def console_table(report: BenchReport) -> Table:
    """Per load point: rates, tokens/s, concurrency, errors and the latencies at p50/p95/p99."""
    table = Table(
        title=f"hearth bench {report.run_id} — {report.config['target']} ({report.config['model']})"
    )
    for name in ("strategy", "req/s", "out tok/s", "tot tok/s", "conc", "ok", "err", "incomp"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for metric in ("TTFT", "ITL", "TPOT", "E2E"):
        table.add_column(f"{metric} ms p50/p95/p99", justify="right")
    for b in report.benchmarks:
        table.add_row(
            b.strategy.label,
            _f(b.requests_per_s, 2),
            _f(b.output_tokens_per_s, 1),
            _f(b.total_tokens_per_s, 1),
            _f(b.concurrency, 2),
            str(b.successful),
            str(b.errored),
            str(b.incomplete),
            *("/".join(_f(getattr(getattr(b, m), p)) for p in ("p50", "p95", "p99")) for m in METRICS),
        )
    return table


def write_json(report: BenchReport, path: Path) -> Path:
    path.write_text(report.model_dump_json(indent=2))
    return path


def csv_row(report: BenchReport, b: BenchmarkResult) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": report.run_id,
        "target": report.config["target"],
        "model": report.config["model"],
        "strategy": b.strategy.type,
        "streams": b.strategy.streams,
        "rate": b.strategy.rate,
        "duration_s": round(b.duration_s, 4),
        "successful": b.successful,
        "errored": b.errored,
        "incomplete": b.incomplete,
        "warmup": b.warmup,
        "stopped_by": b.stopped_by,
        "requests_per_s": b.requests_per_s,
        "output_tokens_per_s": b.output_tokens_per_s,
        "total_tokens_per_s": b.total_tokens_per_s,
        "concurrency": b.concurrency,
        "error_rate": b.error_rate,
        "prompt_tokens_mean": b.prompt_tokens.mean,
        "output_tokens_mean": b.output_tokens.mean,
    }
    for metric in METRICS:
        for stat in STATS:
            row[f"{metric}_{stat}"] = getattr(getattr(b, metric), stat)
    return row


def write_csv(report: BenchReport, path: Path) -> Path:
    rows = [csv_row(report, b) for b in report.benchmarks]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["run_id"])
        writer.writeheader()
        writer.writerows(rows)
    return path


_PANELS = (("ttft_ms", "time to first token (ms)"), ("itl_ms", "inter-token latency (ms)"),
           ("e2e_ms", "end-to-end latency (ms)"))  # fmt: skip


def write_png(report: BenchReport, path: Path) -> Path:
    """Distributions first, load curves after. Top row: the CDF of TTFT, ITL and E2E, one line per load
    point. Bottom row: for one load point, the histograms of the same three (p50 and p95 marked); for several,
    TTFT and E2E p50/p95 and output tokens/s against the load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    points = [b for b in report.benchmarks if b.successful]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    for ax, (metric, title) in zip(axes[0], _PANELS, strict=True):
        for b in points:
            values = np.sort(np.asarray(getattr(b.samples, metric), dtype=float))
            if values.size:
                ax.step(
                    values, np.arange(1, values.size + 1) / values.size, where="post", label=b.strategy.label
                )
        ax.set_title(f"{title}: CDF")
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if len(points) > 1:
            ax.legend(fontsize=7)
    if len(points) == 1:
        [b] = points
        for ax, (metric, title) in zip(axes[1], _PANELS, strict=True):
            values = getattr(b.samples, metric)
            if values:
                ax.hist(values, bins=min(50, max(5, len(values) // 3)), color="tab:blue", alpha=0.8)
            dist = getattr(b, metric)
            for stat, style in (("p50", "-"), ("p95", "--")):
                value = getattr(dist, stat)
                if value is not None:
                    ax.axvline(value, color="crimson", linestyle=style, label=f"{stat} {value:.1f} ms")
            ax.set_title(f"{title}: histogram, {len(values)} requests")
            ax.set_xlabel("ms")
            ax.set_ylabel("requests")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    else:
        points.sort(key=lambda b: b.requests_per_s)
        rps = [b.requests_per_s for b in points]
        for ax, (metric, title) in zip(axes[1][:2], (_PANELS[0], _PANELS[2]), strict=True):
            for stat, style in (("p50", "o-"), ("p95", "s--")):
                ax.plot(rps, [getattr(getattr(b, metric), stat) or 0.0 for b in points], style, label=stat)
            ax.set_title(f"{title} against load")
            ax.set_xlabel("requests/s")
            ax.legend()
            ax.grid(alpha=0.3)
        ax = axes[1][2]
        ax.plot([b.concurrency for b in points], [b.output_tokens_per_s for b in points], "o-")
        for b in points:
            ax.annotate(b.strategy.label, (b.concurrency, b.output_tokens_per_s), fontsize=7)
        ax.set_title("output tokens/s")
        ax.set_xlabel("mean concurrency")
        ax.grid(alpha=0.3)
    fig.suptitle(f"hearth bench {report.run_id}: {report.config['model']} at {report.config['target']}")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(report: BenchReport, out_dir: Path) -> list[Path]:
    """JSON, CSV and PNG of a run, named after its id, in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"bench-{report.run_id}"
    return [
        write_json(report, stem.with_suffix(".json")),
        write_csv(report, stem.with_suffix(".csv")),
        write_png(report, stem.with_suffix(".png")),
    ]
