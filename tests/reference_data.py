"""Where the vendored upstream reference data lives (``tests/reference``), and its upstream copy.

The data (CRDs, KEDA scaler keys, Karpenter's CloudFormation template, the Pulumi project schema)
is copied byte for byte from the pinned upstream tags; ``tests/reference/README.md`` lists the
sources and licences. The repository carries it so that a plain clone (a fork's pull request, a
newcomer's laptop) passes its own tests; ``test_reference_data`` keeps it identical to the
steering repo's ``shared/reference`` whenever that folder sits beside the checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "reference"
# Files of ours inside the vendored folder (not upstream data): the licence text it ships under.
VENDORED_ONLY = frozenset({"LICENSE-Apache-2.0.txt"})
# The GitHub Actions the workflows pin, with a README of their own: this repository's own set,
# not part of the steering repo's copy.
ACTIONS = "github-actions"


def reference_dir() -> Path:
    """The vendored reference folder; a clear error when the checkout is incomplete."""
    if not (REFERENCE / "crds").is_dir():
        raise FileNotFoundError(
            f"reference data not found at {REFERENCE} (expected crds/ and keda-scalers.json; "
            "it is part of the repository: is the checkout complete?)"
        )
    return REFERENCE


def upstream_copy() -> Path | None:
    """``<repo>/../shared/reference`` when the steering repo's copy is beside this checkout."""
    shared = (REPO.parent / "shared" / "reference").resolve()
    return shared if shared.is_dir() else None


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Sub, !GetAtt, !Ref ...) as plain values."""


CfnLoader.add_multi_constructor("!", lambda loader, _tag, node: loader.construct_scalar(node))


def karpenter_template() -> dict[str, Any]:
    """Karpenter v1.14.1's getting-started CloudFormation template (controller policies, node
    role, interruption queue and rules)."""
    path = reference_dir() / "karpenter-aws" / "cloudformation.yaml"
    return yaml.load(path.read_text(), CfnLoader)
