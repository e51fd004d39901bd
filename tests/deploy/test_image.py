"""The one image, checked without a Docker engine: hadolint, and the Dockerfile's own promises
(pinned base, lock, non-root, no build tools, healthcheck, the `alchemiser` entrypoint the compose
test runs)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.deploy.compose_file import REPO, application_services, load_compose
from tests.deploy.dockerfile import DOCKERFILE, exec_form, stages

HADOLINT = Path(sys.executable).parent / "hadolint"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "apt-get install", "curl", "wget")


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stage_starts_from_the_pinned_slim_python_3_11() -> None:
    assert [stage.base for stage in stages()] == ["python:3.11-slim", "python:3.11-slim"]


def test_dependencies_are_installed_from_the_lock() -> None:
    build = stages()[0]
    assert "requirements.lock ./" in build.all("COPY")
    assert any("--constraint requirements.lock" in run for run in build.all("RUN"))


def test_the_final_stage_runs_as_a_numeric_non_root_user_with_no_build_tools() -> None:
    runtime = stages()[-1]
    user, _, group = runtime.last("USER").partition(":")
    assert int(user) > 0 and int(group) > 0
    for run in runtime.all("RUN"):
        assert not any(tool in run for tool in BUILD_TOOLS), run
    assert runtime.all("COPY") == ["--from=build /opt/venv /opt/venv"]


def test_the_healthcheck_asks_healthz_with_python_alone() -> None:
    healthcheck = stages()[-1].last("HEALTHCHECK")
    command = exec_form(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "/healthz" in command[2]


def test_the_entrypoint_is_alchemiser_so_compose_runs_the_commands_the_process_test_ran() -> None:
    runtime = stages()[-1]
    assert exec_form(runtime.last("ENTRYPOINT")) == ["alchemiser"]
    assert exec_form(runtime.last("CMD"))[:2] == ["serve", "strategy"]
    services = application_services(load_compose())
    for name in ("strategy", "portfolio", "execution", "notify"):
        assert "entrypoint" not in services[name].definition
        assert services[name].command[:2] == ["serve", name]
    assert services["migrate"].command == ["db", "upgrade"]


def test_the_strategy_files_and_migrations_ship_as_package_data() -> None:
    """The image installs the package (not the source tree), so every non-Python file the
    services read must match a package-data pattern."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    shipped = [
        path
        for folder in ("services", "shared")
        for path in (REPO / folder).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    ]
    assert any(path.suffix == ".clj" for path in shipped)
    for path in shipped:
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), path


def test_dockerignore_keeps_tests_docs_secrets_and_local_state_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    for entry in ("tests", "docs", ".env", ".env.*", ".venv", "data", "out", ".git"):
        assert entry in ignored, entry
    for entry in ("**/__pycache__", "**/.pytest_cache", "**/.mypy_cache", "**/.ruff_cache"):
        assert entry in ignored, entry


def test_every_source_folder_is_a_package_so_the_install_ships_it() -> None:
    """setuptools' package finder skips a folder without `__init__.py` (the migration scripts,
    say), and the image would then lack it."""
    for folder in ("services", "shared"):
        for directory in (REPO / folder).rglob("*"):
            holds_files = directory.is_dir() and any(p.is_file() for p in directory.iterdir())
            if holds_files and directory.name != "__pycache__":
                assert (directory / "__init__.py").is_file(), directory
