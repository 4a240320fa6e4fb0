"""Kubernetes manifests for a plan option: a KServe InferenceService (RawDeployment) running vLLM, and an
autoscaler; validated offline (core kinds with kubernetes-validate, KServe kinds against its CRD schemas)."""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hearth.planner.catalog import GpuSpec, ModelSpec
from hearth.planner.perf import QUANTIZATIONS, VLLM_QUANTIZATION
from hearth.planner.schemas import PlanOption

VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
KUBERNETES_VERSION = "1.33"  # schema version kubernetes-validate checks against
GPU_MEMORY_UTILIZATION = 0.9
PORT = 8080
# KServe's InferenceService CRD ships in the package (see data/kserve/SOURCE.md);
# HEARTH_PLANNER_KSERVE_CRDS points at another folder of CRDs (e.g. a newer KServe release).
DEFAULT_CRD_DIR = Path(__file__).resolve().parent / "data" / "kserve"


def resource_name(option: PlanOption) -> str:
    """A DNS-1035 name from the model id and quantization, e.g. 'llama-3-1-8b-instruct-fp8'."""
    base = option.model_id.split("/")[-1].lower()
    name = re.sub(r"[^a-z0-9]+", "-", f"{base}-{option.quantization}").strip("-")
    if not name[0].isalpha():
        name = "m-" + name
    return name[:45].rstrip("-")


def vllm_args(option: PlanOption, model: ModelSpec, served_name: str) -> list[str]:
    """vLLM's OpenAI server arguments for the option."""
    args = [
        "--model",
        model.checkpoint(option.quantization),
        "--served-model-name",
        served_name,
        "--port",
        str(PORT),
        "--tensor-parallel-size",
        str(option.gpus_per_replica),
        "--max-model-len",
        str(option.max_model_len),
        "--max-num-seqs",
        str(option.max_num_seqs),
        "--gpu-memory-utilization",
        str(GPU_MEMORY_UTILIZATION),
        "--enable-chunked-prefill",
    ]
    quant = VLLM_QUANTIZATION.get(option.quantization)
    if quant:
        args += ["--quantization", quant]
    if QUANTIZATIONS[option.quantization][2] < 2.0:
        args += ["--kv-cache-dtype", "fp8"]
    return args


def build_manifests(
    option: PlanOption,
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    name: str | None = None,
    namespace: str = "default",
    max_replicas: int | None = None,
) -> list[dict[str, Any]]:
    """The InferenceService and its HorizontalPodAutoscaler for one plan option."""
    name = name or resource_name(option)
    tp = option.gpus_per_replica
    weights_gb = model.params_b * QUANTIZATIONS[option.quantization][0]
    # Host memory: vLLM stages weights through page cache and pinned buffers; 1.25× the weights plus 16 GiB.
    memory_gi = math.ceil(weights_gb * 1.25 + 16)
    max_replicas = max_replicas or max(option.replicas * 2, option.replicas + 1)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "hearth-planner"}
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                "serving.kserve.io/deploymentMode": "RawDeployment",
                # The HPA below scales on vLLM's own queue; KServe must not create a CPU-based one.
                "serving.kserve.io/autoscalerClass": "external",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(PORT),
                "prometheus.io/path": "/metrics",
                "hearth.ai/model": model.id,
                "hearth.ai/plan": (
                    f"{option.replicas}x{tp} {gpu.name}, {option.quantization}, p95 TTFT "
                    f"{option.ttft_ms_p95:g} ms, ITL {option.itl_ms_p95:g} ms"
                ),
            },
        },
        "spec": {
            "predictor": {
                "minReplicas": option.replicas,
                "maxReplicas": max_replicas,
                "nodeSelector": {"nvidia.com/gpu.product": gpu.product_label},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": VLLM_IMAGE,
                        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                        "args": vllm_args(option, model, name),
                        "env": [
                            {
                                "name": "HF_TOKEN",
                                "valueFrom": {
                                    "secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}
                                },
                            },
                            {"name": "HF_HOME", "value": "/models"},
                        ],
                        "ports": [{"containerPort": PORT, "name": "http", "protocol": "TCP"}],
                        "resources": {
                            "requests": {
                                "cpu": str(4 * tp),
                                "memory": f"{memory_gi}Gi",
                                "nvidia.com/gpu": str(tp),
                            },
                            "limits": {"memory": f"{memory_gi}Gi", "nvidia.com/gpu": str(tp)},
                        },
                        "readinessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10},
                        # Downloading and loading tens of GB of weights takes minutes.
                        "startupProbe": {
                            "httpGet": {"path": "/health", "port": PORT},
                            "periodSeconds": 10,
                            "failureThreshold": 180,
                        },
                        "volumeMounts": [
                            {"name": "model-cache", "mountPath": "/models"},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "model-cache", "emptyDir": {}},
                    # NCCL between tensor-parallel workers needs more shared memory than the 64 MB default.
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
                ],
            }
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"{name}-predictor", "namespace": namespace, "labels": labels},
        "spec": {
            # KServe's RawDeployment names the predictor's Deployment "<isvc>-predictor".
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{name}-predictor"},
            "minReplicas": option.replicas,
            "maxReplicas": max_replicas,
            # vLLM's running-request gauge, exposed to the HPA by prometheus-adapter as a Pods metric; the
            # target is 80 % of the batch the plan found to meet the SLOs.
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "vllm_num_requests_running"},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(max(1, int(option.max_num_seqs * 0.8))),
                        },
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }
    return [isvc, hpa]


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


@cache
def _crd_validators(crd_dir: str) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) → a validator of KServe's openAPIV3Schema for it, from the CRD files."""
    import jsonschema

    # The CRDs are megabytes of YAML: libyaml's loader reads them in a fraction of the pure-Python time.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out: dict[tuple[str, str], Any] = {}
    # Only the InferenceService CRD is needed for the kinds built here (the others are megabytes more).
    for path in sorted(Path(crd_dir).glob("*inferenceservices*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                # Kubernetes structural schemas are a subset of draft 7; they are trusted, so skip the
                # (slow) meta-validation that jsonschema.validate would run on every call.
                out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(
                    version["schema"]["openAPIV3Schema"]
                )
    return out


def validate(manifests: list[dict[str, Any]], *, crd_dir: Path | None = None) -> None:
    """Raise ValueError naming the object and the problem if any manifest is invalid (offline)."""
    import jsonschema
    import kubernetes_validate

    validators = _crd_validators(str(crd_dir or DEFAULT_CRD_DIR))
    for m in manifests:
        key = (m.get("apiVersion", ""), m.get("kind", ""))
        label = f"{key[1]}/{m.get('metadata', {}).get('name')}"
        if key[0].startswith("serving.kserve.io/"):
            validator = validators.get(key)
            if validator is None:
                raise ValueError(
                    f"{label}: no KServe CRD schema for {key[0]} {key[1]} in {crd_dir or DEFAULT_CRD_DIR}"
                )
            try:
                validator.validate(m)
            except jsonschema.ValidationError as exc:
                raise ValueError(
                    f"{label}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}"
                ) from None
        else:
            try:
                kubernetes_validate.validate(m, desired_version=KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise ValueError(f"{label}: {exc.message}") from None
