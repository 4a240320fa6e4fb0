"""Schemathesis fuzzes every operation of the OpenAPI document against a real `hearth serve` (admin key,
SQLite, embedded embedder/reranker/Whisper/piper, chat aliases on a fake upstream): no answer may be a server
error, and every answer must have a documented status, a documented content type and a body that matches
its schema. Valid and invalid requests, a bounded number per operation, derandomized: the run is the same
every time and stays short.

Schemathesis' pytest plugin does not run under this pytest (it rewrites a node attribute pytest 9 dropped), so
the test drives its Python API with Hypothesis itself: one strategy per operation and generation mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fake_openai import FakeOpenAI
from tests.harness import RunningHearth, run_hearth

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and mode (valid, invalid); HEARTH_FUZZ_EXAMPLES=50 for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "6"))

# Operations that cannot be fuzzed meaningfully here, and why. (The WebSocket /api/voice/stream is no
# OpenAPI operation.)
EXCLUDED = {
    # Applies manifests to a Kubernetes cluster and waits up to `timeout_s` (2 h at most) for it to become
    # Ready: none runs here. tests/test_planner_api.py drives it against a fake Kubernetes API.
    "POST /api/planner/deploy",
}

# Every chat alias answers from the fake upstream: a fuzzed conversation must not wait for a real model.
CHAT_ALIASES = ("chat", "tip-generator", "judge")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHearth]:
    upstream = FakeOpenAI().start()
    config = {
        "backends": {"fake": {"type": "openai", "base_url": upstream.url}},
        "aliases": {
            name: {"kind": "chat", "deployments": [{"backend": "fake", "model": "fake-model"}]}
            for name in CHAT_ALIASES
        },
    }
    try:
        with run_hearth(tmp_path_factory.mktemp("fuzz"), config) as hearth:
            yield hearth
    finally:
        upstream.stop()


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Cases run and the failures found (one line each) for one operation in one mode."""
    cases = 0
    found: list[str] = []

    # No shrinking: the first failing example is reported as it is, which keeps the run bounded.
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal cases
        cases += 1
        try:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)
        except (Failure, FailureGroup) as exc:
            failures = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in failures:
                found.append(f"{operation.label} [{mode}]: {failure.title}: {failure.message[:300]}")
            found.append(f"    reproduce: {case.as_curl_command(headers=headers)[:600]}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): no negative cases
        assert mode is GenerationMode.NEGATIVE
    return cases, found


def test_every_operation_answers_as_documented(fuzzed: RunningHearth) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed_ops = [op for op in operations if op.label not in EXCLUDED]
    assert len(fuzzed_ops) == len(operations) - len(EXCLUDED)
    cases = 0
    failures: list[str] = []
    for operation in fuzzed_ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n, found = fuzz(operation, mode, fuzzed.headers())
            cases += n
            failures += found
    failed = sum(1 for line in failures if line.startswith("    reproduce"))
    print(f"\nschemathesis: {len(fuzzed_ops)} operations, {cases} cases, {failed} failing")
    assert not failures, "\n".join(failures)
