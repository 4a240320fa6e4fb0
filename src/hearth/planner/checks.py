"""Whether a configuration can run at all (known names, a checkpoint, FP8 support, tensor parallel, memory),
and what it serves at most: the checks behind `/predict`'s 4xx answers."""

from __future__ import annotations

from hearth.planner import perf
from hearth.planner.predictor import Point, Predictor
from hearth.planner.schemas import PredictRequest
from hearth.platform.errors import HearthError, bad_request, not_found

SIXTEEN_BIT = ("bf16", "fp16")


def sixteen_bit(quantizations: list[str] | tuple[str, ...], asked: str) -> tuple[str, str | None]:
    """fp16 and bf16 are one 16-bit class: a user who writes either means an unquantized deployment.

    Returns the catalog's spelling for `asked` and a note saying so when it differs (else `asked`, None)."""
    if asked in SIXTEEN_BIT and asked not in quantizations:
        other = next((q for q in SIXTEEN_BIT if q in quantizations), None)
        if other is not None:
            return other, (
                f"{asked} and {other} are one 16-bit class: planned with the catalog's {other} checkpoint"
            )
    return asked, None


def check_point(predictor: Predictor, request: PredictRequest) -> None:
    """Unknown model, GPU or quantization, or a configuration that cannot run: a 4xx that says why."""
    has_rows = any(r.model_id == request.model_id and r.gpu == request.gpu for r in predictor.rows)
    if request.concurrency is not None and request.request_rate is not None:
        raise bad_request("give concurrency or request_rate, not both", param="concurrency")
    if request.model_id not in predictor.models and not has_rows:
        raise not_found(
            f"unknown model {request.model_id!r}; known: {', '.join(sorted(predictor.models))}",
            param="model_id",
            code="unknown_model",
        )
    if request.gpu not in predictor.gpus and not has_rows:
        raise not_found(
            f"unknown GPU {request.gpu!r}; known: {', '.join(sorted(predictor.gpus))}",
            param="gpu",
            code="unknown_gpu",
        )
    model, gpu = predictor.models.get(request.model_id), predictor.gpus.get(request.gpu)
    if model is None or gpu is None:
        return
    if request.gpu_count < 1:
        raise bad_request(f"{gpu.name} needs at least one GPU per replica", param="gpu_count")
    if request.quantization not in model.quantizations:
        raise bad_request(
            f"{model.id} has no {request.quantization} checkpoint in the catalog; "
            f"choose one of {', '.join(model.quantizations)}",
            param="quantization",
        )
    if not gpu.supports(request.quantization):
        raise bad_request(f"{gpu.name} has no FP8 tensor cores; use bf16 or int4-awq", param="quantization")
    if model.attention_heads % request.gpu_count:
        raise bad_request(
            f"tensor parallel size {request.gpu_count} must divide the {model.attention_heads} "
            f"attention heads of {model.id}",
            param="gpu_count",
        )
    if request.gpu_count > gpu.max_per_node:
        raise bad_request(
            f"at most {gpu.max_per_node} {gpu.name} GPUs fit in one node (tensor parallel within a node)",
            param="gpu_count",
        )
    if request.prompt_tokens + request.output_tokens > model.context_length:
        raise bad_request(
            f"{request.prompt_tokens}+{request.output_tokens} tokens exceed the "
            f"{model.context_length}-token context of {model.id}",
            param="prompt_tokens",
        )

    c = predictor.configs([model], [request.quantization], [gpu], [request.gpu_count])
    weights_gb = float(perf.weight_bytes(c)[0]) / 1e9
    if perf.max_batch(c, request.prompt_tokens + request.output_tokens, 1e9)[0] < 1:
        raise HearthError(
            422,
            f"{model.id} ({request.quantization}, {weights_gb:.0f} GB of weights) does not fit with a "
            f"{request.prompt_tokens + request.output_tokens}-token KV cache on "
            f"{request.gpu_count}× {gpu.name} "
            f"({gpu.memory_gb:g} GB each); use more GPUs, a smaller quantization or a larger GPU",
            param="gpu_count",
            code="does_not_fit",
        )


def capacity(predictor: Predictor, point: Point) -> float:
    """Requests/s the configuration serves at its largest batch."""

    model, gpu = predictor.models[point.model_id], predictor.gpus[point.gpu]
    c = predictor.configs([model], [point.quantization], [gpu], [point.gpu_count])
    limit = max(float(perf.max_batch(c, point.prompt_tokens + point.output_tokens)[0]), 1.0)
    lat = perf.closed_loop(c, point.prompt_tokens, point.output_tokens, limit, tails=predictor.tails)
    return float(lat.requests_per_s[0])
