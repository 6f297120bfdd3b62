#!/usr/bin/env bash
# `make lint`'s Kubernetes step: render each kustomization, validate it against the Kubernetes
# API schemas (strict: unknown fields fail), and run checkov's Kubernetes checks on it (zero
# failed; every skip is a checkov.io/skip annotation with its reason, next to the resource).
# Tools come from the hashed deploy/kubernetes/requirements-lint.txt, in .venv-k8s (the Makefile
# installs them): kubectl (for kustomize), kubernetes-validate, checkov.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS=${K8S_TOOLS:-.venv-k8s/bin}
# The newest Kubernetes release whose schemas the pinned kubernetes-validate ships.
KUBERNETES_VERSION=1.37.0
# Custom resources have no schema in kubernetes-validate, and no package ships CloudNativePG's.
CRD_REASON="no schema ships with kubernetes-validate or any installed package for this custom resource"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for dir in deploy/kubernetes deploy/kubernetes/cloudnativepg; do
    name=$(echo "$dir" | tr / -)
    "$TOOLS/kubectl" kustomize "$dir" >"$out/$name.yaml"
    echo "== $dir: kubernetes-validate --strict, Kubernetes $KUBERNETES_VERSION"
    # Custom resources: kubernetes-validate warns that it has no schema; say which and why.
    "$TOOLS/kubernetes-validate" --strict --kubernetes-version "$KUBERNETES_VERSION" \
        "$out/$name.yaml" 2>&1 | sed -e "s|$out/||" -e "s|Couldn't find schema.*|& (skipped: $CRD_REASON)|"
    echo "== $dir: checkov --framework kubernetes"
    # --skip-download: no guideline or policy downloads (the checks ship with checkov).
    "$TOOLS/checkov" --framework kubernetes --file "$out/$name.yaml" --compact --quiet \
        --skip-download --output cli | sed '/^$/d'
done
