"""Kustomize, to render deploy/kubernetes: the one pinned build, or kubectl's.

The renderer is kustomize KUSTOMIZE_VERSION, built once with the machine's Go into
`~/.cache/allim/` (beside the Kafka jars `make test` caches there; about 30 s the first
time). Without Go, `kubectl kustomize` renders instead; with neither the test fails and says
what to install: a deployment check that skips would pass on a broken overlay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

KUSTOMIZE_VERSION = "v5.8.1"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
CACHE = Path.home() / ".cache" / "allim" / f"kustomize-{KUSTOMIZE_VERSION}"
BUILD_TIMEOUT_SECONDS = 600


def _build_with_go(go: str) -> Path:
    """`go install` the pinned kustomize into the cache; the binary's path."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # built beside its final place and moved there whole, so two runs at once never see half
    with tempfile.TemporaryDirectory(dir=CACHE) as staging:
        built = subprocess.run(
            [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
            env={**os.environ, "GOBIN": staging, "GOFLAGS": "-mod=mod"},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
        if built.returncode != 0:
            pytest.fail(
                f"Building kustomize {KUSTOMIZE_VERSION} with '{go}' failed "
                f"(exit {built.returncode}):\n{built.stderr}"
            )
        os.replace(Path(staging) / "kustomize", CACHE / "kustomize")
    return CACHE / "kustomize"


def command() -> list[str]:
    """The command that renders a kustomization directory given as its last argument."""
    cached = CACHE / "kustomize"
    if cached.is_file():
        return [str(cached), "build"]
    if go := shutil.which("go"):
        return [str(_build_with_go(go)), "build"]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    pytest.fail(
        "No renderer for deploy/kubernetes: install Go (kustomize "
        f"{KUSTOMIZE_VERSION} is then built into {CACHE}) or kubectl."
    )


def build(directory: Path) -> str:
    """The rendered YAML of the kustomization in `directory`."""
    rendered = subprocess.run(
        [*command(), str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if rendered.returncode != 0:
        pytest.fail(
            f"Rendering '{directory}' failed (exit {rendered.returncode}):\n{rendered.stderr}"
        )
    return rendered.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendered multi-document YAML."""
    return [doc for doc in yaml.safe_load_all(text) if doc]
