"""Static checks of app/Dockerfile (no Docker engine here) and of the image's requirements."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

APP = Path(__file__).resolve().parents[2] / "app"
DOCKERFILE = APP / "Dockerfile"
# Namespace packages cannot be mapped by top-level name; the rest map module -> distribution.
MODULE_DISTRIBUTIONS = {
    "boto3": "boto3",
    "botocore": "botocore",
    "azure.core": "azure-core",
    "azure.storage.queue": "azure-storage-queue",
    "azure.data.tables": "azure-data-tables",
    "azure.identity": "azure-identity",
    "prometheus_client": "prometheus-client",
    "requests": "requests",
    "rich": "rich",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def test_every_base_image_is_pinned_to_an_exact_release() -> None:
    bases = [args.split()[0] for kind, args in instructions() if kind == "FROM"]
    assert bases
    for image in bases:
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_numeric_non_root_user() -> None:
    users = [args for kind, args in final_stage() if kind == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid == "10001"
    assert gid == "" or (gid.isdigit() and int(gid) != 0)
    kinds = [kind for kind, _ in final_stage()]
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")


def test_entrypoint_runs_the_consumer_package_as_app() -> None:
    (entrypoint,) = [args for kind, args in final_stage() if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "app.consumer"]
    env = " ".join(args for kind, args in final_stage() if kind == "ENV")
    pythonpath = re.search(r"PYTHONPATH=(\S+)", env)
    assert pythonpath
    # The package directory copied in the build stage is <PYTHONPATH>/app.
    copies = [args.split()[-1] for kind, args in instructions() if kind == "COPY"]
    assert f"{pythonpath.group(1)}/app" in copies


def test_works_on_a_read_only_root_filesystem() -> None:
    env = " ".join(args for kind, args in final_stage() if kind == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert any("compileall" in args for kind, args in instructions() if kind == "RUN")


def test_no_secrets_or_remote_downloads_in_the_image() -> None:
    for kind, args in instructions():
        if kind in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD|CONNECTION_STRING)", args, re.I), args
        assert kind != "ADD", "COPY only: ADD can fetch URLs and unpack archives"
        assert not re.search(r"\b(curl|wget)\b", args), args
    assert not re.search(r"AccountKey=|AKIA[0-9A-Z]{16}", DOCKERFILE.read_text())


def test_dependencies_are_installed_only_from_the_hashed_lock() -> None:
    runs = [args for kind, args in instructions() if kind == "RUN" and "pip install" in args]
    assert runs
    for args in runs:
        assert re.search(
            r"pip install .*--require-hashes --no-deps .*-r /tmp/requirements\.lock$", args
        ), args
    copies = [args for kind, args in instructions() if kind == "COPY" and "requirements" in args]
    assert copies == ["requirements.lock /tmp/requirements.lock"]


LOCK = APP / "requirements.lock"
LOCK_ENTRY = re.compile(
    r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every entry of the lock."""
    return {
        canonicalize_name(name): (version, hashes.count("--hash="))
        for name, version, hashes in LOCK_ENTRY.findall(LOCK.read_text())
    }


def test_the_lock_was_compiled_from_the_current_requirements() -> None:
    digest = hashlib.sha256((APP / "requirements.txt").read_bytes()).hexdigest()
    assert f"# input-sha256: {digest}" in LOCK.read_text(), "stale: run `make lock`"


def test_every_locked_package_is_pinned_with_hashes() -> None:
    entries = locked()
    names = re.findall(r"^([A-Za-z0-9_.-]+)==", LOCK.read_text(), re.M)
    assert len(entries) == len(names) >= 20  # every entry parsed: pins and hashes
    assert all(count >= 1 for _, count in entries.values())
    for name, version in requirements().items():
        assert entries[canonicalize_name(name)][0] == version, name


def test_the_lock_holds_every_transitive_dependency() -> None:
    """Each locked package's own requirements (as installed here at the same version, markers
    evaluated for the image: Linux x86_64, CPython 3.11) are locked too, at a version they
    accept: a lock missing a dependency would fail --no-deps at run time, not at build."""
    entries = locked()
    env = {"python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64",
           "platform_system": "Linux", "os_name": "posix", "extra": ""}  # fmt: skip
    checked = 0
    for name, (version, _) in entries.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        checked += 1
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate(env):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in entries, f"{name} needs {requirement}: not in the lock"
            assert requirement.specifier.contains(entries[dependency][0], prereleases=True)
    assert checked >= len(entries) // 2


def requirements() -> dict[str, str]:
    pins = {}
    for raw in (APP / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert re.fullmatch(r"\d+(\.\d+)+", version), f"not pinned: {line}"
            pins[name.lower()] = version
    return pins


def imported_modules() -> set[str]:
    modules = set()
    for path in APP.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    return modules


def test_every_third_party_import_of_the_app_is_pinned() -> None:
    pins = requirements()
    third_party = {m for m in imported_modules() if m.split(".")[0] in {"boto3", "botocore",
                   "azure", "prometheus_client", "requests", "rich"}}  # fmt: skip
    assert third_party
    for module in third_party:
        owner = next((d for m, d in MODULE_DISTRIBUTIONS.items() if module.startswith(m)), None)
        assert owner is not None, f"{module}: which distribution provides it?"
        assert owner in pins, f"{module} comes from {owner}, missing in app/requirements.txt"


@pytest.mark.parametrize("module", ["pulumi", "pulumi_aws", "pulumi_azure_native", "moto"])
def test_app_imports_no_pulumi_or_test_tools(module: str) -> None:
    assert not {m for m in imported_modules() if m.split(".")[0] == module}
