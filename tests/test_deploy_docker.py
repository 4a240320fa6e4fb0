"""deploy/docker/Dockerfile and deploy/compose/compose.yaml, checked without a Docker engine (none runs here
or in CI, so the image is not built by the tests): hadolint lints the Dockerfile; dockerfile-parse reads it to
check what the image promises (stages, a non-root user, the health check, the volume, the llama.cpp build
flags of the Makefile, COPY sources that exist and are not excluded by .dockerignore); the compose file is
parsed by the compose_spec parser (strict Compose Specification) and its services, health checks and HEARTH_*
settings are checked against Hearth's own Settings."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy_helpers import DEPLOY, ROOT, check_hearth_env, setting_names, tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
MAKEFILE = (ROOT / "Makefile").read_text()


# ---- Dockerfile ------------------------------------------------------------------------------------------


def instructions() -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(DOCKERFILE))
    return parser.structure


def stages() -> dict[str, list[dict[str, Any]]]:
    """Instructions by stage name (FROM … AS name)."""
    out: dict[str, list[dict[str, Any]]] = {}
    current = ""
    for ins in instructions():
        if ins["instruction"] == "FROM":
            current = ins["value"].split()[-1]
            out[current] = []
        elif current:
            out[current].append(ins)
    return out


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_stage_is_slim_non_root_with_home_volume_and_health_check() -> None:
    found = stages()
    assert list(found) == ["web", "builder", "runtime"]  # the last stage is the image
    runtime = found["runtime"]
    (user,) = values(runtime, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so Kubernetes can verify runAsNonRoot
    env = dict(
        item.split("=", 1)
        for value in values(runtime, "ENV")
        for item in shlex.split(value.replace("\\\n", ""))
    )
    assert env["HEARTH_HOME"] in yaml.safe_load(values(runtime, "VOLUME")[0])
    assert env["HEARTH_HOST"] == "0.0.0.0"
    assert values(runtime, "EXPOSE") == [env["HEARTH_PORT"]]
    (health,) = values(runtime, "HEALTHCHECK")
    assert "/healthz" in health and "HEARTH_PORT" in health
    assert values(runtime, "ENTRYPOINT") == ['["hearth"]'] and values(runtime, "CMD") == ['["serve"]']
    # Only the built environment comes from the builder: no compiler in the image.
    copies = values(runtime, "COPY")
    assert copies == ["--from=builder /opt/hearth /opt/hearth"]
    assert env["PATH"].startswith("/opt/hearth/bin:")
    assert not any("build-essential" in run or "cmake" in run for run in values(runtime, "RUN"))


def test_builder_builds_llama_cpp_like_the_makefile() -> None:
    builder = stages()["builder"]
    make_flags = re.search(r'CMAKE_ARGS="([^"]+)"', MAKEFILE)
    assert make_flags, "Makefile no longer sets CMAKE_ARGS for llama-cpp-python"
    runs = " ".join(values(builder, "RUN"))
    assert f'CMAKE_ARGS="{make_flags.group(1)}"' in runs
    assert "-DGGML_NATIVE=OFF" in make_flags.group(1)
    make_version = re.search(r"^LLAMA_VERSION := (\S+)", MAKEFILE, re.MULTILINE).group(1)
    assert f"LLAMA_VERSION={make_version}" in values(builder, "ARG")
    pinned = re.search(r'"llama-cpp-python==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert pinned == make_version
    assert "--find-links /wheels" in runs  # the built wheel is what pip installs


def test_web_stage_copies_what_the_makefile_vendors() -> None:
    """The image serves the same web/vendor files as `make install` puts in a checkout."""
    make = set(re.findall(r"^\tcp (node_modules/\S+) \$\(WEB_VENDOR\)/(\S+)$", MAKEFILE, re.MULTILINE))
    assert make
    web = " ".join(values(stages()["web"], "RUN"))
    docker = set(re.findall(r"cp (node_modules/\S+) /vendor/(\S+)", web))
    assert docker == make
    builder = values(stages()["builder"], "COPY")
    assert "--from=web /vendor ./src/hearth/web/vendor" in builder


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out (.dockerignore: the last matching pattern wins, a match on
    a folder covers what is inside it, `**` matches any number of folders)."""
    ignored = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        regex = fnmatch.translate(pattern).replace(".*.*/", "(.*/)?")
        if any(re.match(regex, "/".join(parts[: i + 1])) for i in range(len(parts))):
            ignored = not negate
    return ignored


def test_every_copy_source_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for ins in instructions():
        if ins["instruction"] == "COPY" and "--from=" not in ins["value"]:
            sources += shlex.split(ins["value"])[:-1]
    assert {"package.json", "package-lock.json", "pyproject.toml", "README.md", "src"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # …and the context leaves out what must not be baked in.
    for secret_or_bulk in (".venv", ".git", "node_modules", ".env", "hearth.yaml", "src/hearth/web/vendor"):
        assert dockerignored(secret_or_bulk, patterns), secret_or_bulk
    assert not dockerignored("src/hearth/defaults.yaml", patterns)


# ---- compose ---------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid_compose_specification() -> None:
    from compose_spec import PyCompose

    parsed = PyCompose.from_yaml(COMPOSE.read_text())  # raises with the key path on a mistake
    parsed.validate()
    assert parsed.service_names() == ["hearth", "postgres", "redis", "nats", "qdrant"]


def test_compose_parser_rejects_a_mistake() -> None:
    from compose_spec import PyCompose

    text = COMPOSE.read_text()
    for wrong in (
        text.replace("condition: service_healthy", "condition: service_healty", 1),
        text.replace("interval: 5s", "intervl: 5s", 1),
    ):
        with pytest.raises(Exception, match="services"):
            PyCompose.from_yaml(wrong)


def test_compose_services_wait_for_healthy_dependencies() -> None:
    services = compose()["services"]
    hearth = services["hearth"]
    assert set(hearth["depends_on"]) == {"postgres", "redis", "nats", "qdrant"}
    for name, condition in hearth["depends_on"].items():
        assert condition == {"condition": "service_healthy"}, name
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service.get("volumes"), f"{name} keeps its data in a volume"
    assert "-js" in services["nats"]["command"]  # JetStream: Hearth's event streams need it
    # Hearth's own check asks the route that says it can serve (database and models).
    assert "/readyz" in " ".join(hearth["healthcheck"]["test"])
    assert (
        COMPOSE.parent / hearth["build"]["context"] / hearth["build"]["dockerfile"]
    ).resolve() == DOCKERFILE


def test_compose_hearth_settings_are_real_and_point_at_the_services(tmp_path: Path) -> None:
    spec = compose()
    known = setting_names()
    env: dict[str, str] = spec["services"]["hearth"]["environment"]
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE.parent / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example), "deploy/compose/env.example must list every required variable"
    for name, service in spec["services"].items():
        unknown = [v for v in service.get("environment", {}) if v.startswith("HEARTH_") and v not in known]
        assert not unknown, f"compose service {name}: {unknown} are not Hearth settings"

    def interpolate(value: str) -> str:  # what compose does with ${NAME:?…} and ${NAME:-default}
        value = re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: example[m.group(1)], value)
        return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), value)

    settings = check_hearth_env({k: interpolate(str(v)) for k, v in env.items()}, "compose hearth", tmp_path)
    assert settings.resolved_database_url.startswith("postgresql+psycopg://hearth:")
    assert settings.host == "0.0.0.0"
    ports = {
        "HEARTH_DATABASE_URL": ("postgres", 5432),
        "HEARTH_REDIS_URL": ("redis", 6379),
        "HEARTH_NATS_URL": ("nats", 4222),
        "HEARTH_QDRANT_URL": ("qdrant", 6333),
    }
    for name, (service, port) in ports.items():
        url = urlsplit(interpolate(env[name]))
        assert (url.hostname, url.port) == (service, port), name
        assert service in spec["services"]
    # The same password on both sides.
    postgres = spec["services"]["postgres"]["environment"]
    assert urlsplit(interpolate(env["HEARTH_DATABASE_URL"])).password == interpolate(
        postgres["POSTGRES_PASSWORD"]
    )
    assert interpolate(env["HEARTH_QDRANT_API_KEY"]) == interpolate(
        spec["services"]["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]
    )
    assert env["HEARTH_HOME"] in {v.split(":")[1] for v in spec["services"]["hearth"]["volumes"]}


def test_compose_qdrant_server_matches_the_client() -> None:
    """qdrant-client warns about, and may fail on, a server more than one minor version away."""
    image = compose()["services"]["qdrant"]["image"]
    server = re.fullmatch(r"qdrant/qdrant:v(\d+)\.(\d+)\.\d+", image)
    client = re.search(r'"qdrant-client==(\d+)\.(\d+)\.', (ROOT / "pyproject.toml").read_text())
    assert server and client, image
    assert server.group(1) == client.group(1) and abs(int(server.group(2)) - int(client.group(2))) <= 1


def test_compose_hearth_runs_hardened() -> None:
    hearth = compose()["services"]["hearth"]
    assert hearth["read_only"] is True and "/tmp" in hearth["tmpfs"]
    assert hearth["cap_drop"] == ["ALL"] and "no-new-privileges:true" in hearth["security_opt"]
    assert hearth["ports"] == ["127.0.0.1:8080:8080"]  # loopback unless the operator says otherwise
