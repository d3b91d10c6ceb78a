"""Azure config errors fail before any resource exists; AWS and Azure runs stay apart."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from stacks.azure import globally_unique
from stacks.config import ConfigError, EdwConfig
from stacks.offline import ProgramError, StackRun, run_stack

LOCATION = {"azure-native:location": "westeurope"}
API_CIDRS = {"apiAllowedCidrs": '["198.51.100.0/24"]'}


def _parse(values: Mapping[str, str], provider: Mapping[str, str] = LOCATION) -> EdwConfig:
    return EdwConfig.parse(
        {"cloud": "azure", "disableLocalAccounts": "false", **API_CIDRS, **values}, "dev", provider
    )


def test_dev_defaults_parse() -> None:
    cfg = _parse({})
    assert cfg.azure is not None
    assert cfg.azure.location == "westeurope"
    assert cfg.nodes.families == ("D", "F")
    assert cfg.name == "edw-dev"


@pytest.mark.parametrize(
    ("values", "provider", "expected"),
    [
        (
            {"vmSkuFamilies": '["D", "Z"]'},
            LOCATION,
            ["edw:vmSkuFamilies has unknown families ['Z']", "allowed: A, B, D, E, F, L, M"],
        ),
        ({"vmSkuFamilies": "[]"}, LOCATION, ["edw:vmSkuFamilies must name at least one family"]),
        (
            {},
            {"azure-native:location": "West Europe"},
            ["azure-native:location must be one of", "'westeurope', not the display name"],
        ),
        ({}, {"azure-native:location": "mars-north"}, ["got 'mars-north'", "westeurope"]),
        ({}, {}, ["azure-native:location must be one of", "got ''"]),
        (
            {"storageNetworkDefaultAction": "deny"},
            LOCATION,
            ["edw:storageNetworkDefaultAction must be one of Allow, Deny; got 'deny'"],
        ),
        (
            {"storageNetworkDefaultAction": "Deny"},
            LOCATION,
            [
                "edw:storageNetworkDefaultAction Deny is not supported yet",
                "the consumer and KEDA could not reach the queue; allowed: Allow",
            ],
        ),
        (
            {"systemVmSize": "D4ds_v5"},
            LOCATION,
            ["edw:systemVmSize must be an Azure VM size like Standard_D4ds_v5"],
        ),
        (
            {"kubernetesVersion": "1.34"},
            LOCATION,
            [
                "edw:kubernetesVersion must be a minor AKS supports: 1.35, 1.36, 1.37; got '1.34'",
                "one minor at a time",
            ],
        ),
        (
            {"deployerPrincipals": '["33333333-2222-4333-8444-555555555555"]'},
            LOCATION,
            [
                "edw:deployerPrincipals must list Entra principals as <type>:<object id> with "
                "type User, Group, ServicePrincipal",
            ],
        ),
        (
            {"previewPrincipals": '["User:33333333-2222-4333-8444-555555555555"]'},
            LOCATION,
            ["edw:previewPrincipals must be groups or service principals", "Entra group"],
        ),
        (
            {"resultTtlDays": "30"},
            LOCATION,
            ["edw:resultTtlDays is not applied on azure", "no time-to-live"],
        ),
        (
            {"messageRetentionSeconds": "86400"},
            LOCATION,
            ["edw:messageRetentionSeconds is not applied on azure", "7 days by default"],
        ),
        (
            {"instanceFamilies": '["m7i"]'},
            LOCATION,
            ["edw:instanceFamilies only applies to cloud aws, not azure"],
        ),
    ],
)
def test_azure_config_errors_name_the_key(
    values: dict[str, str], provider: dict[str, str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        _parse(values, provider)
    for text in expected:
        assert text in str(error.value)


def test_azure_defaults_protect_the_table_on_an_entra_only_cluster_without_admin_groups() -> None:
    """Entra-only needs no admin group any more (Azure RBAC grants the deployer); the results
    table is protected unless config says otherwise; AWS keeps its own defaults."""
    config = EdwConfig.parse(
        {"cloud": "azure", "apiAllowedCidrs": '["0.0.0.0/0"]'}, "dev", LOCATION
    )
    assert config.azure is not None
    assert config.azure.disable_local_accounts is True
    assert config.azure.admin_group_object_ids == ()
    assert config.deletion_protection is True
    assert config.kubernetes_version == "1.35"
    assert _parse({"deletionProtection": "false"}, LOCATION).deletion_protection is False


def test_bad_config_registers_nothing() -> None:
    with pytest.raises(ProgramError) as error:
        run_stack("dev", {"vmSkuFamilies": '["Q"]'})
    assert isinstance(error.value.cause, ConfigError)
    assert "edw:vmSkuFamilies has unknown families ['Q']" in str(error.value.cause)
    # The program stopped at config, before any resource was registered.
    assert error.value.resources == []


def _clouds(run: StackRun) -> set[str]:
    return {r.type.split(":", 1)[0] for r in run.resources if r.custom}


def test_aws_then_azure_in_one_process_keep_their_own_resources() -> None:
    # Overrides bypass the per-stack cache, so both programs really run here, back to back.
    aws = run_stack("aws", {"prefix": "iso"})
    azure = run_stack("dev", {"prefix": "iso"})
    assert "aws" in _clouds(aws)
    assert "azure-native" not in _clouds(aws)
    assert "azure-native" in _clouds(azure)
    assert "aws" not in _clouds(azure)
    assert "eks" not in {r.type.split(":", 1)[0] for r in azure.resources}
    assert all(r.urn.startswith("urn:pulumi:aws::edw::") for r in aws.resources)
    assert all(r.urn.startswith("urn:pulumi:dev::edw::") for r in azure.resources)
    assert not {r.urn for r in aws.resources} & {r.urn for r in azure.resources}
    assert not [t for t, _ in aws.invokes if t.startswith("azure-native:")]
    assert not [t for t, _ in azure.invokes if t.startswith("aws:")]
    assert azure.outputs["clusterName"] == "iso-dev"
    assert "queueUrl" in aws.outputs
    assert "queueUrl" not in azure.outputs
    # Running the AWS program again after Azure still yields the same AWS stack.
    again = run_stack("aws", {"prefix": "iso", "tags": '["again=1"]'})
    assert sorted((r.type, r.name) for r in again.resources) == sorted(
        (r.type, r.name) for r in aws.resources
    )


@pytest.mark.parametrize(("max_length", "sep"), [(24, ""), (44, "-"), (50, "")])
def test_globally_unique_names_fit_azure_rules(max_length: int, sep: str) -> None:
    cfg = EdwConfig.parse(
        {"cloud": "azure", "prefix": "abcdefghij", "disableLocalAccounts": "false", **API_CIDRS},
        "Prod_EU.west-2024",
        LOCATION,
    )
    name = globally_unique(cfg, "sub-a", max_length, sep)
    assert len(name) <= max_length
    assert re.fullmatch(rf"[a-z0-9]+{re.escape(sep)}[0-9a-f]{{8}}", name)
    # Prefix and stack, lower-cased to a-z0-9 and cut to what the hash leaves room for.
    assert name.startswith("abcdefghijprodeuwest2024"[: max_length - 8 - len(sep)])
    # Stable per subscription and stack, distinct across subscriptions.
    assert name == globally_unique(cfg, "sub-a", max_length, sep)
    assert name != globally_unique(cfg, "sub-b", max_length, sep)


@pytest.mark.parametrize("key", ["deployerPrincipals", "previewPrincipals", "routerPublishers"])
def test_a_principal_listed_twice_is_refused(key: str) -> None:
    """Grants are named by object id: the same id twice (even under two types) would register
    one resource name twice, which the engine refuses mid-`up` (the mocks do not)."""
    oid = "33333333-3333-3333-3333-333333333333"
    twice = f'["ServicePrincipal:{oid}", "User:{oid.upper()}"]'
    with pytest.raises(ConfigError) as error:
        _parse({key: twice})
    assert f"edw:{key} must list each principal once; repeated object ids ['{oid}']" in str(
        error.value
    )
