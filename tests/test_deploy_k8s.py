"""deploy/k8s renders with `kubectl kustomize`, and what it renders would be accepted and would work: every
object passes kubernetes-validate (strict, the Kubernetes version the planner targets) or the CRD schemas the
package ships; the references between objects resolve (Services, probes, volumes, HPA, PDB, NetworkPolicy
select what exists); pods meet the "restricted" Pod Security Standard; the hearth.yaml in the ConfigMap loads
with Hearth's own loader and `chat` really reaches the vLLM Service in the GPU overlay; secrets are
referenced, never shipped, and docs/deploy.md names each one. No API server runs here: nothing is applied."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from hearth.config import load_models_config
from hearth.planner import manifests
from tests.deploy_helpers import (
    K8S,
    KUSTOMIZATIONS,
    OVERLAYS,
    ROOT,
    check_hearth_env,
    container,
    env_of,
    find,
    hearth_config,
    one,
    overlay,
    pod_specs,
    render,
    rendered,
    selects,
    setting_names,
    spec_labels,
)

# ---- rendering and schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_and_every_object_is_valid(name: str) -> None:
    objects = rendered(name)
    assert objects
    # Core kinds: kubernetes-validate, strict (unknown fields fail); custom resources: shipped CRD schemas.
    manifests.validate(objects)
    for o in objects:
        namespaced = o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume")
        assert not namespaced or o["metadata"].get("namespace"), f"{o['kind']}/{o['metadata']['name']}"


def test_every_overlay_is_covered() -> None:
    assert {f"overlays/{o}" for o in OVERLAYS} <= set(KUSTOMIZATIONS)
    assert "base" in KUSTOMIZATIONS and "gpu-operator" in KUSTOMIZATIONS


def test_a_mistake_in_a_manifest_fails_validation(tmp_path: Path) -> None:
    """The check can fail: a misspelt field (strict mode) and a wrong type are each reported by name."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    deployment = copy / "base" / "deployment.yaml"
    text = deployment.read_text()
    for wrong in (
        text.replace("livenessProbe:", "livenesProbe:"),
        text.replace("containerPort: 8080", 'containerPort: "http"'),
    ):
        deployment.write_text(wrong)
        with pytest.raises(ValueError, match="Deployment/hearth"):
            manifests.validate(render(copy / "overlays" / "embedded"))


# ---- references between objects --------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_references_resolve(name: str) -> None:
    objects = overlay(name)
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    pods = [(o["metadata"]["namespace"], t) for o, t in pod_specs(objects)]
    for workload, template in pod_specs(objects):
        ns, spec = workload["metadata"]["namespace"], template["spec"]
        assert selects(workload["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            sources = set(v) - {"name"}
            assert len(sources) == 1, f"volume {v['name']} of {workload['metadata']['name']}: {sources}"
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]) in names
            if "configMap" in v:  # generated names carry a content hash: kustomize must have rewritten them
                assert ("ConfigMap", ns, v["configMap"]["name"]) in names
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", ns, spec["serviceAccountName"]) in names
        for c in spec["containers"]:
            ports = {p["name"] for p in c.get("ports", [])}
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{c['name']} mounts undefined volume {mount['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert c[probe]["httpGet"]["port"] in ports, f"{c['name']} {probe} port"
    for service in find(objects, "Service"):
        ns, selector = service["metadata"]["namespace"], service["spec"]["selector"]
        matched = [t for pns, t in pods if pns == ns and selects(selector, t["metadata"]["labels"])]
        assert matched, f"Service/{service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            assert any(
                port["targetPort"] in {p["name"] for p in c.get("ports", [])}
                for t in matched
                for c in t["spec"]["containers"]
            ), f"Service/{service['metadata']['name']} targets a port no container has"
    for policy in (*find(objects, "PodDisruptionBudget"), *find(objects, "NetworkPolicy")):
        ns = policy["metadata"]["namespace"]
        selector = policy["spec"].get("selector", policy["spec"].get("podSelector"))["matchLabels"]
        assert any(pns == ns and selects(selector, t["metadata"]["labels"]) for pns, t in pods), policy
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], hpa["metadata"]["namespace"], target["name"]) in names


@pytest.mark.parametrize("name", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    """The namespace enforces "restricted": a pod that breaks it would be refused at admission."""
    objects = overlay(name)
    for ns in find(objects, "Namespace"):
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload, template in pod_specs(objects):
        spec, label = template["spec"], workload["metadata"]["name"]
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] > 0, label
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", label
        assert spec["automountServiceAccountToken"] is False, label
        allowed = {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected", "downwardAPI"}
        assert all(set(v) - {"name"} <= allowed for v in spec.get("volumes", [])), label
        for c in spec["containers"]:
            security = c["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, label
            assert security["capabilities"]["drop"] == ["ALL"], label
            assert "privileged" not in security, label
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), label
            assert "memory" in c["resources"]["limits"], label


# ---- Hearth itself ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_hearth_pod_settings_and_catalogue_load(name: str, tmp_path: Path) -> None:
    """The pod's HEARTH_* variables are real settings with valid values, its hearth.yaml (from the
    ConfigMap, where HEARTH_CONFIG_FILE points) loads with Hearth's own loader, and the probes hit the
    server's liveness and readiness routes; the root filesystem is read-only, HEARTH_HOME a volume."""
    objects = overlay(name)
    deployment = one(objects, "Deployment", "hearth")
    hearth = container(deployment, "hearth")
    env = env_of(hearth)
    settings = check_hearth_env(
        {k: v if isinstance(v, str) else None for k, v in env.items()}, f"{name} Deployment/hearth", tmp_path
    )
    assert settings.host == "0.0.0.0"
    assert {p["containerPort"] for p in hearth["ports"]} == {settings.port}
    assert hearth["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert hearth["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hearth["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hearth["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in hearth["volumeMounts"]}
    assert mounts[env["HEARTH_HOME"]] == "home" and "/tmp" in mounts

    # HEARTH_CONFIG_FILE is a key of the mounted ConfigMap.
    config_path = Path(env["HEARTH_CONFIG_FILE"])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    configmap = one(objects, "ConfigMap", volumes[mounts[str(config_path.parent)]]["configMap"]["name"])
    catalogue = tmp_path / "hearth.yaml"
    catalogue.write_text(configmap["data"][config_path.name])
    models = load_models_config(catalogue)
    assert {"chat", "embedder", "reranker", "stt", "tts"} <= set(models.aliases)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_hearth_variable_in_any_container_is_a_setting(name: str) -> None:
    known = setting_names()
    for workload, template in pod_specs(rendered(name)):
        for c in (*template["spec"].get("initContainers", []), *template["spec"]["containers"]):
            unknown = [v for v in env_of(c) if v.startswith("HEARTH_") and v not in known]
            assert not unknown, f"{workload['metadata']['name']}/{c['name']}: {unknown} are not settings"


def test_embedded_is_one_pod_on_sqlite_and_lancedb() -> None:
    objects = overlay("embedded")
    deployment = one(objects, "Deployment", "hearth")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two pods on one RWO claim
    env = env_of(container(deployment, "hearth"))
    # No external server: SQLite and LanceDB live in HEARTH_HOME, on the claim.
    assert not {"HEARTH_DATABASE_URL", "HEARTH_QDRANT_URL", "HEARTH_NATS_URL", "HEARTH_REDIS_URL"} & set(env)
    assert one(objects, "PersistentVolumeClaim", "hearth-home")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not find(objects, "HorizontalPodAutoscaler")


def test_scale_out_uses_external_servers_from_a_secret_and_spreads_replicas() -> None:
    objects = overlay("scale-out")
    deployment = one(objects, "Deployment", "hearth")
    spec = deployment["spec"]["template"]["spec"]
    env = env_of(container(deployment, "hearth"))
    for name in ("HEARTH_DATABASE_URL", "HEARTH_REDIS_URL", "HEARTH_NATS_URL", "HEARTH_QDRANT_URL"):
        ref = env[name]["secretKeyRef"]
        assert ref["name"] == "hearth-external" and not ref.get("optional"), name
    # The HPA owns the replica count; it starts at three and a drain takes one at a time.
    assert "replicas" not in deployment["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler", "hearth")
    assert hpa["spec"]["minReplicas"] >= 3 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert one(objects, "PodDisruptionBudget", "hearth")["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selects(anti["podAffinityTerm"]["labelSelector"]["matchLabels"], spec_labels(deployment))
    # Files every replica must see (uploads, the BM25 index, voice audio) are on one shared claim.
    assert one(objects, "PersistentVolumeClaim", "hearth-home")["spec"]["accessModes"] == ["ReadWriteMany"]
    # The policy lets HTTP in and the servers' ports out.
    policy = one(objects, "NetworkPolicy", "hearth")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 5432, 6379, 4222, 6333} <= egress


def test_gpu_tier_routes_chat_to_vllm_on_a_gpu_node(tmp_path: Path) -> None:
    """Hearth's `chat` goes first to a URL that is the vllm Service, on the port that reaches vLLM's
    container, under the model name vLLM serves, with the key vLLM checks; vLLM lands on a GPU node."""
    objects = overlay("gpu-inference")
    hearth = one(objects, "Deployment", "hearth")
    vllm = one(objects, "Deployment", "vllm")
    server = container(vllm, "vllm")
    pod = vllm["spec"]["template"]["spec"]

    # Scheduling: a GPU node, its taint tolerated, one (time-sliced) GPU requested and limited.
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert (
        server["resources"]["limits"]["nvidia.com/gpu"] == server["resources"]["requests"]["nvidia.com/gpu"]
    )

    # Routing: hearth.yaml's first chat deployment → the vllm Service → the vLLM container.
    configmap = hearth_config(objects)
    path = tmp_path / "hearth.yaml"
    path.write_text(configmap["data"]["hearth.yaml"])
    models = load_models_config(path)
    first = models.aliases["chat"].deployments[0]
    backend = models.backends[first.backend]
    assert backend.type == "openai"
    assert models.backends[models.aliases["chat"].deployments[-1].backend].type == "llama_cpp"  # fallback
    url = urlsplit(backend.base_url)
    service = one(objects, "Service", url.hostname)
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    assert selects(service["spec"]["selector"], spec_labels(vllm))
    container_port = {p["name"]: p["containerPort"] for p in server["ports"]}[port["targetPort"]]
    args = dict(a.removeprefix("--").split("=", 1) for a in server["args"])
    assert int(args["port"]) == container_port
    assert args["served-model-name"] == first.model
    # The key: Hearth reads it from the env variable its hearth.yaml names; both pods take the same Secret.
    raw = yaml.safe_load(configmap["data"]["hearth.yaml"])
    variable = raw["backends"][first.backend]["api_key"].removeprefix("env:")
    assert env_of(container(hearth, "hearth"))[variable] == env_of(server)["VLLM_API_KEY"]
    # Time-slicing: two pods share a GPU's memory, so vLLM takes under half of it.
    assert float(args["gpu-memory-utilization"]) < 0.5


def test_time_slicing_config_advertises_each_gpu_several_times() -> None:
    for objects in (rendered("gpu-operator"), overlay("gpu-inference")):
        config = one(objects, "ConfigMap", "time-slicing-config")
        assert config["metadata"]["namespace"] == "gpu-operator"
        plugin = yaml.safe_load(config["data"]["any"])
        assert plugin["version"] == "v1"
        (resource,) = plugin["sharing"]["timeSlicing"]["resources"]
        assert resource["name"] == "nvidia.com/gpu" and resource["replicas"] >= 2


@pytest.mark.parametrize("name", OVERLAYS)
def test_secrets_are_referenced_not_shipped_and_documented(name: str) -> None:
    objects = overlay(name)
    assert not find(objects, "Secret"), "Secrets are created by the operator (docs/deploy.md), never shipped"
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for _workload, template in pod_specs(objects):
        for c in template["spec"]["containers"]:
            for value in env_of(c).values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    ref = value["secretKeyRef"]
                    assert ref["name"] in docs and ref["key"] in docs, f"docs/deploy.md: {ref}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_hearth_pods_stop_gracefully(name: str) -> None:
    """A stopping pod first leaves the Service's endpoints (preStop), then drains within the grace period."""
    deployment = one(overlay(name), "Deployment", "hearth")
    spec = deployment["spec"]["template"]["spec"]
    wait = container(deployment, "hearth")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < wait < spec["terminationGracePeriodSeconds"] - 30  # 30 s: the server's own drain and grace


def test_gpu_component_composes_with_scale_out(tmp_path: Path) -> None:
    """components/gpu-inference added to the scale-out overlay, as docs/deploy.md says: every replica gets the
    catalogue that routes `chat` to vLLM and the key, next to the external servers' settings."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    combined = copy / "overlays" / "scale-out-gpu"
    combined.mkdir()
    (combined / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../scale-out]\ncomponents: [../../components/gpu-inference]\n"
    )
    objects = render(combined)
    manifests.validate(objects)
    env = env_of(container(one(objects, "Deployment", "hearth"), "hearth"))
    assert env["VLLM_API_KEY"]["secretKeyRef"]["name"] == "vllm"
    assert env["HEARTH_DATABASE_URL"]["secretKeyRef"]["name"] == "hearth-external"
    configmap = hearth_config(objects)
    catalogue = tmp_path / "hearth.yaml"
    catalogue.write_text(configmap["data"]["hearth.yaml"])
    assert load_models_config(catalogue).aliases["chat"].deployments[0].backend == "vllm"
    assert one(objects, "Deployment", "vllm")["metadata"]["namespace"] == "hearth"
