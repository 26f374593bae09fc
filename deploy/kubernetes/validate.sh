#!/usr/bin/env bash
# Validates the Kubernetes manifests against the Kubernetes OpenAPI schemas.
# kubeconform is a Go binary published outside the registries reachable
# here, so this uses the PyPI package kubernetes-validate, which bundles the
# schemas, installed into a venv under target/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/k8s-validate-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'kubernetes-validate>=1.31'
fi
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.31 "$here/job.yaml"
