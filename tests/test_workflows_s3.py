"""Artifacts on S3: a real S3-compatible server on loopback (moto's, `moto_server`, from its own virtualenv:
botocore, which moto needs, cannot share one with the pinned kubernetes client; `make moto` builds it).
Runs write their artifacts there, downloads and `s3://` parameters read them back, a missing object is a
clear error."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import free_port, run_hearth
from tests.helpers import tool_missing, wait_until
from tests.test_workflows_api import EMPTY_CATALOG, FAST, api, finished, start, steps

ROOT = Path(__file__).resolve().parents[1]
MOTO = os.environ.get("HEARTH_TEST_MOTO_SERVER", str(ROOT / ".venv-moto" / "bin" / "moto_server"))
KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing", "s3_region": "us-east-1"}


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if not Path(MOTO).exists():
        tool_missing(f"no moto_server at {MOTO}: run `make moto` (or set HEARTH_TEST_MOTO_SERVER)")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    process = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 60, what="moto_server listening", every=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _bucket(s3_url: str) -> Any:
    from minio import Minio

    client = Minio(
        s3_url.removeprefix("http://"),
        access_key="testing",
        secret_key="testing",
        secure=False,
        region="us-east-1",
    )
    name = f"hearth-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    return client, name


def test_runs_store_and_read_artifacts_on_s3(s3_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, bucket = _bucket(s3_url)
    settings = {**FAST, **KEYS, "s3_bucket": bucket, "s3_endpoint_url": s3_url, "s3_prefix": "team"}
    with run_hearth(tmp_path, EMPTY_CATALOG, **settings) as hearth:
        run = finished(hearth, start(hearth, "demo", params={"n": 3})["id"])
        assert run["status"] == "succeeded", run
        [artifact] = run["artifacts"]
        key = f"team/runs/{run['id']}/produce/words"
        assert artifact["uri"] == f"s3://{bucket}/{key}"
        stored = client.get_object(bucket, key).read().decode()
        assert stored.split() == ["hearth-0", "hearth-1", "hearth-2"]
        # The next step read it back from S3 (its output counts the letters), and so does the download.
        assert steps(run)["consume"]["outputs"] == {"letters": 3 * len("hearth-0")}
        assert api(hearth, "GET", f"/runs/{run['id']}/artifacts/produce.words").content.decode() == stored

        # An s3:// URI as a parameter: checked at creation, fetched for the step.
        client.put_object(bucket, "inputs/source.txt", __import__("io").BytesIO(b"0123456789"), 10)
        source = f"s3://{bucket}/inputs/source.txt"
        read = finished(hearth, start(hearth, "reader", params={"source": source})["id"])
        assert steps(read)["read"]["outputs"] == {"bytes": 10}
        r = api(
            hearth, "POST", "/runs", json={"pipeline": "reader", "params": {"source": f"s3://{bucket}/nope"}}
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "missing_artifact"

        # The object deleted behind Hearth's back: the download says it is missing.
        client.remove_object(bucket, key)
        r = api(hearth, "GET", f"/runs/{run['id']}/artifacts/produce.words")
        assert r.status_code == 404 and r.json()["error"]["code"] == "artifact_missing"
