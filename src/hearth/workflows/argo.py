"""Argo Workflows: a run compiled to an `argoproj.io/v1alpha1` Workflow, validated offline against Argo's
CRD schema (shipped in data/argo/, see SOURCE.md), submitted with the official `kubernetes` client.

The Workflow is a DAG with one task per step; each task's container runs `hearth run step RUN STEP`, which
claims that step in the shared database, runs it with the same code as the local executor and records its
end. So Argo orders and places the steps, while states, retries, logs, metrics and artifacts stay
Hearth's: the run looks the same in the API whichever executor ran it. The containers read
HEARTH_DATABASE_URL (PostgreSQL) and the HEARTH_S3_* settings from one Secret (`HEARTH_ARGO_SECRET`).

No Kubernetes API server can run on the machines Hearth is developed on: the tests submit to a loopback
HTTP server that records what the real client sends and answers as the API server would. That is the edge
of what is tested; a real cluster needs Argo Workflows installed and the Secret created.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ARGO = ("argoproj.io", "v1alpha1", "workflows")
CRD_DIR = Path(__file__).resolve().parent / "data" / "argo"
RUN_LABEL = "hearth.dev/run-id"
# The container's own deadline sits above the step's timeout, which `hearth run step` enforces itself.
DEADLINE_MARGIN_S = 60


def dns_name(text: str) -> str:
    """A name Argo accepts for a task or template (lowercase letters, digits, '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63] or "step"


def workflow_name(run_id: str) -> str:
    return f"hearth-run-{run_id[:16]}"


def compile_workflow(
    *,
    run_id: str,
    definition: dict[str, Any],
    image: str,
    namespace: str,
    secret: str,
    service_account: str | None = None,
) -> dict[str, Any]:
    """The Argo Workflow that runs `run_id` (a run of the pipeline `definition`)."""
    names = {step["name"]: dns_name(step["name"]) for step in definition["steps"]}
    if len(set(names.values())) != len(names):
        raise ValueError(f"two steps of {definition['name']} map to one Argo task name: {names}")
    tasks = []
    templates: list[dict[str, Any]] = []
    for step in definition["steps"]:
        task: dict[str, Any] = {"name": names[step["name"]], "template": f"step-{names[step['name']]}"}
        if step["after"]:
            task["dependencies"] = [names[d] for d in step["after"]]
        tasks.append(task)
        template: dict[str, Any] = {
            "name": f"step-{names[step['name']]}",
            "metadata": {"labels": {RUN_LABEL: run_id, "hearth.dev/step": names[step["name"]]}},
            "container": {
                "image": image,
                "command": ["hearth", "run", "step", run_id, step["name"]],
                "envFrom": [{"secretRef": {"name": secret}}],
                "env": [{"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}],
            },
        }
        if step["retries"]:
            # Each retry runs `hearth run step` again, which claims the attempt the engine made ready.
            template["retryStrategy"] = {"limit": step["retries"], "retryPolicy": "OnFailure"}
        if step["timeout"]:
            template["activeDeadlineSeconds"] = int(step["timeout"]) + DEADLINE_MARGIN_S
        templates.append(template)
    spec: dict[str, Any] = {
        "entrypoint": "pipeline",
        "templates": [{"name": "pipeline", "dag": {"tasks": tasks}}, *templates],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": f"{ARGO[0]}/{ARGO[1]}",
        "kind": "Workflow",
        "metadata": {
            "name": workflow_name(run_id),
            "namespace": namespace,
            "labels": {RUN_LABEL: run_id, "hearth.dev/pipeline": dns_name(definition["name"])},
        },
        "spec": spec,
    }


@cache
def _validator(crd_dir: str) -> Any:
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # megabytes of YAML: libyaml is much faster
    for path in sorted(Path(crd_dir).glob("*workflows.yaml")):
        doc = yaml.load(path.read_text(), Loader=loader)
        if (
            doc
            and doc.get("kind") == "CustomResourceDefinition"
            and doc["spec"]["names"]["kind"] == "Workflow"
        ):
            version = next(v for v in doc["spec"]["versions"] if v["name"] == ARGO[1])
            # Structural schemas are trusted: skip jsonschema's (slow) meta-validation of the schema itself.
            return jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])
    raise FileNotFoundError(f"no Argo Workflow CRD in {crd_dir}")


def validate(workflow: dict[str, Any], *, crd_dir: Path | None = None) -> None:
    """Raise ValueError naming the problem if `workflow` does not fit Argo's Workflow CRD schema."""
    import jsonschema

    validator = _validator(str(crd_dir or CRD_DIR))
    errors = sorted(validator.iter_errors(workflow), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(top level)"
        raise ValueError(f"Workflow/{workflow.get('metadata', {}).get('name')}: {first.message} at {where}")
    if not isinstance(workflow.get("spec"), dict):
        raise jsonschema.ValidationError("spec is missing")
    names = {t["name"] for t in workflow["spec"]["templates"]}
    if workflow["spec"]["entrypoint"] not in names:
        raise ValueError(f"entrypoint {workflow['spec']['entrypoint']!r} names no template")


class ArgoSubmitter:
    """Creates (and stops) the Workflow of a run through the Kubernetes API."""

    def __init__(
        self,
        *,
        namespace: str,
        image: str,
        secret: str,
        service_account: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        host: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.image = image
        self.secret = secret
        self.service_account = service_account
        self.kubeconfig = kubeconfig
        self.context = context
        self.host = host

    @classmethod
    def from_settings(cls, settings: Any) -> ArgoSubmitter:
        return cls(
            namespace=settings.argo_namespace,
            image=settings.argo_image,
            secret=settings.argo_secret,
            service_account=settings.argo_service_account,
            kubeconfig=settings.argo_kubeconfig,
            context=settings.argo_kube_context,
            host=settings.argo_kube_api_url,
        )

    def compile(self, *, run_id: str, definition: dict[str, Any]) -> dict[str, Any]:
        workflow = compile_workflow(
            run_id=run_id,
            definition=definition,
            image=self.image,
            namespace=self.namespace,
            secret=self.secret,
            service_account=self.service_account,
        )
        validate(workflow)
        return workflow

    def _api(self) -> Any:
        from hearth.planner.deploy import (
            api_client,
        )  # one way to reach a cluster: in-cluster, kubeconfig or URL

        return api_client(kubeconfig=self.kubeconfig, context=self.context, host=self.host)

    def submit(self, *, run_id: str, definition: dict[str, Any]) -> str:
        """Create the run's Workflow (blocking; call from a thread); returns its name."""
        from kubernetes import client

        workflow = self.compile(run_id=run_id, definition=definition)
        with self._api() as api:
            created = client.CustomObjectsApi(api).create_namespaced_custom_object(
                ARGO[0], ARGO[1], self.namespace, ARGO[2], workflow
            )
        return (created or {}).get("metadata", {}).get("name") or workflow["metadata"]["name"]

    def stop(self, *, run_id: str) -> None:
        """Ask Argo to stop the run's Workflow (a cancelled run); a Workflow already gone is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with self._api() as api:
            try:
                client.CustomObjectsApi(api).patch_namespaced_custom_object(
                    ARGO[0],
                    ARGO[1],
                    self.namespace,
                    ARGO[2],
                    workflow_name(run_id),
                    {"spec": {"shutdown": "Stop"}},
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
