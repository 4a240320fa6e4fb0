"""Manifests for plan options: the vLLM arguments, scheduling, autoscaling and monitoring, validated offline —
core kinds with kubernetes-validate, KServe kinds against KServe's CRD schemas."""

from __future__ import annotations

import copy

import pytest
import yaml

from hearth.planner.catalog import seed_benchmarks, seed_gpus, seed_models
from hearth.planner.intent import parse_intent
from hearth.planner.manifests import build_manifests, resource_name, to_yaml, validate
from hearth.planner.predictor import Predictor
from hearth.planner.schemas import PlanOption
from hearth.planner.search import plan
from hearth.planner.spec import build_spec

MODELS = {m.id: m for m in seed_models()}
GPUS = {g.name: g for g in seed_gpus()}


def option(model_id: str, quantization: str, gpu: str, tp: int, **extra: object) -> PlanOption:
    values = dict(
        model_id=model_id,
        quantization=quantization,
        gpu=gpu,
        gpu_product_label=GPUS[gpu].product_label,
        gpus_per_replica=tp,
        replicas=3,
        total_gpus=3 * tp,
        max_num_seqs=64,
        max_model_len=2048,
        ttft_ms_p95=120.0,
        itl_ms_p95=22.5,
        e2e_ms_p95=6000.0,
        requests_per_s_per_replica=4.2,
        monthly_cost=5000.0,
        quality=80.0,
        quality_source="test",
        scores={},
        source="model",
        confidence="low",
        pareto=True,
    )
    return PlanOption(**{**values, **extra})


def args_of(isvc: dict) -> dict[str, str]:
    args = isvc["spec"]["predictor"]["containers"][0]["args"]
    return {
        args[i]: (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else "")
        for i in range(len(args))
        if args[i].startswith("--")
    }


def test_inference_service_runs_vllm_with_the_plans_arguments() -> None:
    o = option("meta-llama/Llama-3.3-70B-Instruct", "fp8", "H100-80GB", 4)
    isvc, hpa = build_manifests(o, MODELS[o.model_id], GPUS[o.gpu], namespace="llm")
    validate([isvc, hpa])
    assert isvc["kind"] == "InferenceService" and isvc["metadata"]["namespace"] == "llm"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    args = args_of(isvc)
    assert args["--model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert args["--tensor-parallel-size"] == "4"
    assert args["--max-model-len"] == "2048"
    assert args["--max-num-seqs"] == "64"
    assert args["--gpu-memory-utilization"] == "0.9"
    assert args["--quantization"] == "fp8"
    predictor = isvc["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert predictor["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 6)
    assert isvc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # The HPA scales the predictor's Deployment on vLLM's running requests, at 80 % of the planned batch.
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{isvc['metadata']['name']}-predictor"
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "51"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)


def test_awq_uses_the_pre_quantized_checkpoint_and_bf16_no_flag() -> None:
    awq = option("Qwen/Qwen2.5-32B-Instruct", "int4-awq", "L40S-48GB", 1)
    isvc, _ = build_manifests(awq, MODELS[awq.model_id], GPUS[awq.gpu])
    assert args_of(isvc)["--model"] == "Qwen/Qwen2.5-32B-Instruct-AWQ"
    assert args_of(isvc)["--quantization"] == "awq_marlin"
    bf16 = option("ibm-granite/granite-3.1-8b-instruct", "bf16", "L4-24GB", 1)
    isvc, hpa = build_manifests(bf16, MODELS[bf16.model_id], GPUS[bf16.gpu])
    validate([isvc, hpa])
    assert "--quantization" not in args_of(isvc)
    assert isvc["spec"]["predictor"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert resource_name(bf16) == "granite-3-1-8b-instruct-bf16"


def test_manifests_for_every_top_option_of_a_real_plan_validate() -> None:
    predictor = Predictor(seed_models(), seed_gpus(), [r for _, r in seed_benchmarks()])
    for text in (
        "a chatbot for 5,000 employees",
        "summarise long reports for 300 analysts",
        "code completion for 2000 developers",
    ):
        result = plan(predictor, build_spec(parse_intent(text)), limit=5)
        for o in result.balanced + result.cheapest + result.best_accuracy:
            items = build_manifests(o, MODELS[o.model_id], GPUS[o.gpu])
            validate(items)
            assert list(yaml.safe_load_all(to_yaml(items))) == items


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("spec", "predictor", "containers", 0, "resources", "limits"), "lots", "is not of type 'object'"),
        (("spec", "predictor", "minReplicas"), "three", "is not of type 'integer'"),
        (("spec", "predictor", "tolerations", 0, "tolerationSeconds"), "soon", "is not of type 'integer'"),
    ],
)
def test_invalid_inference_service_is_caught(path: tuple, value: object, message: str) -> None:
    o = option("Qwen/Qwen2.5-7B-Instruct", "bf16", "A100-80GB", 1)
    isvc, hpa = build_manifests(o, MODELS[o.model_id], GPUS[o.gpu])
    bad = copy.deepcopy(isvc)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        validate([bad, hpa])


def test_invalid_core_kind_is_caught() -> None:
    o = option("Qwen/Qwen2.5-7B-Instruct", "bf16", "A100-80GB", 1)
    isvc, hpa = build_manifests(o, MODELS[o.model_id], GPUS[o.gpu])
    bad = copy.deepcopy(hpa)
    bad["spec"]["scaleTargetRef"]["replicas"] = 3  # not a field of CrossVersionObjectReference
    with pytest.raises(ValueError, match="HorizontalPodAutoscaler"):
        validate([isvc, bad])
    bad = copy.deepcopy(hpa)
    del bad["spec"]["maxReplicas"]
    with pytest.raises(ValueError, match="maxReplicas"):
        validate([isvc, bad])
