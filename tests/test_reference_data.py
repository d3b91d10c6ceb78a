"""The vendored upstream data is what its README says it is, and the Pulumi.yaml schema holds."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests import reference_data
from tests.reference_data import ACTIONS, REPO, VENDORED_ONLY, reference_dir, upstream_copy

# `| crds/keda/x.yaml | ... | <blob> | <sha256> |` and the `(blob X, sha256 Y)` of the other rows.
CRD_ROW = re.compile(r"^\| (crds/\S+\.yaml) \|.*\| ([0-9a-f]{12}) \| ([0-9a-f]{16}) \|$", re.M)
OTHER_ROW = re.compile(r"^\| `([\w./-]+)` \|.*\(blob ([0-9a-f]{12}), sha256 ([0-9a-f]{16})\)", re.M)
# `| `owner/repo` | vX.Y.Z | <commit> | <date> | <licence> | <blob> | <sha256> |`
ACTION_ROW = re.compile(
    r"^\| `([\w.-]+/[\w.-]+)` \| (v[\d.]+) \| ([0-9a-f]{40}) \| [\d-]+ \| ([\w.-]+) \| "
    r"([0-9a-f]{12}) \| ([0-9a-f]{16}) \|$",
    re.M,
)


def files_below(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by relative path, the workflows' actions (their own README)
    left out."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(f"{ACTIONS}/")
    }


def git_blob_id(data: bytes) -> str:
    """What `git hash-object` prints: the id the README's "Blob" column records at the tag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def documented_files() -> list[tuple[str, str, str]]:
    readme = (reference_dir() / "README.md").read_text()
    return CRD_ROW.findall(readme) + OTHER_ROW.findall(readme)


def test_every_data_file_is_documented_with_its_upstream_blob_and_hash() -> None:
    rows = documented_files()
    data = {
        name
        for name in files_below(reference_dir())
        if name != "README.md" and name not in VENDORED_ONLY and name != "keda-scalers.json"
    }
    # keda-scalers.json is derived from upstream source (facts, not a copied file): no blob.
    assert {name for name, _, _ in rows} == data
    for name, blob, digest in rows:
        content = (reference_dir() / name).read_bytes()
        assert git_blob_id(content).startswith(blob), name
        assert hashlib.sha256(content).hexdigest().startswith(digest), name


def test_the_licence_the_data_ships_under_is_vendored_with_it() -> None:
    readme = (reference_dir() / "README.md").read_text()
    assert readme.count("Apache-2.0") >= 5
    licence = (reference_dir() / "LICENSE-Apache-2.0.txt").read_text()
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence


def test_vendored_copy_is_identical_to_the_steering_repos_copy() -> None:
    upstream = upstream_copy()
    if upstream is None:
        pytest.skip(
            "no second copy of the reference data to compare with (the vendored files are "
            "checked against their recorded upstream blob ids by the other tests)"
        )
    ours = files_below(reference_dir())
    theirs = files_below(upstream)
    assert set(ours) - VENDORED_ONLY == set(theirs)
    changed = sorted(name for name, content in theirs.items() if ours[name] != content)
    assert changed == [], f"tests/reference differs from {upstream}: copy these again"


def test_missing_reference_data_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference_data, "REFERENCE", tmp_path / "reference")
    with pytest.raises(FileNotFoundError, match=r"reference data not found at .*reference"):
        reference_dir()


def test_pulumi_yaml_validates_against_the_clis_project_schema() -> None:
    schema = json.loads((reference_dir() / "pulumi" / "project.json").read_text())
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(project)]
    assert errors == []


def test_the_project_schema_rejects_what_the_cli_rejects() -> None:
    schema = json.loads((reference_dir() / "pulumi" / "project.json").read_text())
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["config"]["prefix"]["type"] = "map"
    assert list(Draft202012Validator(schema).iter_errors(project))


def test_every_vendored_action_is_documented_with_its_release_and_hash() -> None:
    root = reference_dir() / ACTIONS
    rows = ACTION_ROW.findall((root / "README.md").read_text())
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files - {"README.md"} == {
        f"{action}/{name}" for action, *_ in rows for name in ("action.yml", "LICENSE")
    }
    for action, _tag, _commit, licence, blob, digest in rows:
        content = (root / action / "action.yml").read_bytes()
        assert git_blob_id(content).startswith(blob), action
        assert hashlib.sha256(content).hexdigest().startswith(digest), action
        words = {"MIT": "Permission is hereby granted", "Apache-2.0": "Apache License"}[licence]
        assert words in (root / action / "LICENSE").read_text(), action
