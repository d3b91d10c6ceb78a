"""Entry point the Pulumi CLI runs: build the pack from the rules and serve it.

The CLI executes this directory with runpy, which puts the directory itself on sys.path; that
is why the rules are imported as the top-level package ``rules`` here (tests and the offline
check import them as ``policy.rules``). Never import this module: PolicyPack blocks forever.
"""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.ADVISORY)
