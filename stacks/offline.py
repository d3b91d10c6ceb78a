"""Run a stack's real program offline, through Pulumi mocks that answer like the providers.

No Pulumi CLI or provider plugin is needed: ``run_stack("aws")`` reads ``Pulumi.aws.yaml`` the way
the CLI would, runs ``__main__.py`` under ``pulumi.runtime.set_mocks`` and records every resource
registration (type, name, inputs, parent, dependencies) and the stack outputs. Tests and the
offline policy check (``python -m policy.offline``) assert on what it records.

The mocks are honest: they return the computed outputs a provider would (ARNs, URLs, ids,
auto-generated names, the OIDC issuer...) so that downstream inputs carry realistic values, and
they answer the invokes the program makes.

``run_stack(..., preview=True)`` runs it as a first ``pulumi preview`` sees it: every resource is
being created, so every output the provider computes (ids, ARNs, URLs, generated names, the
kubeconfig...) is unknown, and so is every input built from one. What the provider would compute
is exactly what the mocks add to the inputs; in a preview the mocks return those keys as the
engine's unknown sentinel instead, and the SDK resolves them as unknown Outputs (applies on them
never run). The recorded inputs and outputs then carry the sentinel where a value is unknown, as
the engine hands them to a policy pack (``pulumi_policy.proxy``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import runpy
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

from stacks.config import PROJECT
from stacks.urns import ROOT_STACK_TYPE, duplicate_urn_message, engine_urn, split

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-0000000000aa"
DEPLOYER_OBJECT_ID = "00000000-0000-4000-8000-0000000000bb"

Props = dict[str, Any]


@dataclass(frozen=True)
class AliasSpec:
    """One alias as the SDK sends it: a whole URN, or a spec the engine completes (empty name or
    type: the resource's own; no parent_urn: the resource's own parent unless no_parent)."""

    urn: str = ""
    name: str = ""
    type: str = ""
    parent_urn: str = ""
    no_parent: bool = False


@dataclass(frozen=True)
class RecordedResource:
    type: str
    name: str
    urn: str
    id: str
    inputs: Props
    outputs: Props
    parent: str
    dependencies: tuple[str, ...]
    custom: bool
    provider: str
    retain_on_delete: bool = False
    protect: bool = False
    aliases: tuple[str, ...] = ()  # the URNs this resource had before (what the engine matches)
    # The aliases as sent (the SDK's alias specs), for tests that compute the engine's own URNs
    # (tests/urns.py): the mock monitor's URNs keep only the parent's last type.
    alias_specs: tuple[AliasSpec, ...] = ()
    import_id: str = ""  # the import resource option: adopt this existing cloud resource
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False


@dataclass
class StackRun:
    stack: str
    resources: list[RecordedResource]
    outputs: Props
    secret_outputs: frozenset[str] = frozenset()
    invokes: list[tuple[str, Props]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}; have {names}")
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        return next(r for r in self.resources if r.urn == urn)

    def custom_resources(self, kind: str) -> list[RecordedResource]:
        """Kubernetes custom resources of one kind (ScaledObject, NodePool, ...).

        The SDK registers a CustomResource under its own token, kubernetes:<group>/<version>:<Kind>.
        """
        return [
            r
            for r in self.resources
            if r.type.startswith("kubernetes:")
            and r.type.endswith(f":{kind}")
            and "apiVersion" in r.inputs
        ]

    def depends_on(self, dependent: RecordedResource, dependency: RecordedResource) -> bool:
        """True if ``dependent`` waits for ``dependency``, directly or through other resources."""
        seen: set[str] = set()
        todo = list(dependent.dependencies)
        while todo:
            urn = todo.pop()
            if urn == dependency.urn:
                return True
            if urn not in seen:
                seen.add(urn)
                todo.extend(self.by_urn(urn).dependencies if self._known(urn) else ())
        return False

    def _known(self, urn: str) -> bool:
        return any(r.urn == urn for r in self.resources)


class ProgramError(Exception):
    """The program failed; carries what it had registered before it did."""

    def __init__(self, cause: BaseException, resources: list[RecordedResource]) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.resources = resources


def _suffix(*parts: str) -> str:
    """Deterministic stand-in for Pulumi's random auto-name suffix."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:7]


def _guid(*parts: str) -> str:
    """A deterministic GUID, like the ones Azure assigns (client ids, role assignment names)."""
    return str(uuid.UUID(hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]))


def _group_id(resource_group: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}"


def named(inputs: Props, name: str, key: str) -> str:
    """An Azure resource's name: given, or auto-named from the logical name plus a suffix."""
    return inputs.get(key) or f"{name}{_suffix(name)}"


def provider_id(inputs: Props, provider: str, name: str) -> str:
    return f"{_group_id(inputs['resourceGroupName'])}/providers/{provider}/{name}"


def _kubeconfig(cluster: str, server: str, *, context: str, user: str, auth: Props) -> Props:
    """A one-cluster kubeconfig as EKS and AKS hand them out."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": "LS0tLS1CRUdJTg=="},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "users": [{"name": user, "user": auth}],
    }


def _aks_fqdn(cluster: str, location: str) -> str:
    return f"{cluster}-{_suffix(cluster, 'dns')}.hcp.{location}.azmk8s.io"


class ProviderMocks(pulumi_mocks.Mocks):
    """Computes the outputs each provider would return for the resources this program uses."""

    def __init__(
        self,
        aws_region: str,
        azure_location: str,
        account: AccountFacts | None = None,
        tenant: TenantState | None = None,
        *,
        preview: bool = False,
    ) -> None:
        self.preview = preview
        self.region = aws_region or "us-east-1"
        self.location = azure_location or "westeurope"
        # What the mocked account already has (a fresh account: nothing), set per run with the
        # offline: config keys (ACCOUNT_KEYS), which the program never sees.
        self.account = account or AccountFacts()
        self.tenant = tenant or TenantState()
        # Entra: every principal a role assignment may name, with its type (what ARM checks
        # principalType against): the deployer, the configured principals, and each managed
        # identity, topic identity and kubelet identity as the mocks create them.
        self.directory: dict[str, str] = {
            DEPLOYER_OBJECT_ID: self.tenant.deployer_type,
            **self.tenant.directory,
        }
        self.invokes: list[tuple[str, Props]] = []
        self._outputs: dict[str, Callable[[str, str, Props], Props]] = {
            **self._aws_outputs(),
            **self._prometheus_outputs(),
            **self._azure_outputs(),
            **self._kubernetes_outputs(),
        }
        self._computed_invokes = self._azure_invokes()

    # --- invokes -------------------------------------------------------------------------
    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:  # type: ignore[override]
        self.invokes.append((args.token, dict(args.args)))
        # Lookups whose answer depends on what the mocked account or tenant already has.
        by_name = {
            "aws:iam/getRole:getRole": self._get_role,
            "aws:eks/getCluster:getCluster": self._get_cluster,
            "aws:cloudwatch/getLogGroup:getLogGroup": self._get_log_group,
        }
        if args.token in by_name:
            return by_name[args.token](str(args.args.get("name")))
        if args.token == "azure-native:cosmosdb:getDatabaseAccount":
            return self._cosmos_account(dict(args.args))
        answers: dict[str, Props] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": self.account.caller,
                "userId": "AIDAEXAMPLEDEPLOYER",
                "id": ACCOUNT,
            },
            "aws:index/getRegion:getRegion": {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
            },
            "aws:index/getPartition:getPartition": {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
            },
            "aws:ecr/getAuthorizationToken:getAuthorizationToken": {
                "userName": "AWS",
                "password": "mock-ecr-token",
                "authorizationToken": "QVdTOm1vY2stZWNyLXRva2Vu",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                "id": self.region,
            },
            "azure-native:authorization:getClientConfig": {
                "clientId": "00000000-0000-4000-8000-0000000000cc",
                "objectId": DEPLOYER_OBJECT_ID,
                "subscriptionId": SUBSCRIPTION,
                "tenantId": TENANT,
            },
        }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return self._availability_zones(dict(args.args))
        if args.token in self._computed_invokes:
            return self._computed_invokes[args.token](dict(args.args))
        if args.token not in answers:
            raise NotImplementedError(f"the mocks do not answer invoke {args.token}")
        return answers[args.token]

    def _get_cluster(self, name: str) -> Any:
        """eks:DescribeCluster: the cluster and its tags, or the provider's failure for a missing
        one (terraform-provider-aws eks cluster data source: retry.NotFoundError)."""
        if self.account.cluster_tags is None:
            return {}, [("name", f"reading EKS Cluster ({name}): couldn't find resource")]
        arn = f"arn:aws:eks:{self.region}:{ACCOUNT}:cluster/{name}"
        return {"name": name, "id": name, "arn": arn, "tags": dict(self.account.cluster_tags)}

    def _get_log_group(self, name: str) -> Any:
        """logs:DescribeLogGroups by name, then logs:ListTagsForResource on the group found, or the
        provider's failure for a missing group (terraform-provider-aws logs log group data source:
        tfresource.EmptyResultError) or a denied call (worded as the AWS SDK for Go words an
        AccessDeniedException; reconstructed, not captured from a real account)."""
        reading = f"reading CloudWatch Logs Log Group ({name})"
        if "logs:DescribeLogGroups" in self.account.denied_actions:
            return {}, [("name", f"{reading}: {self._denied('DescribeLogGroups', '*')}")]
        if name not in self.account.log_groups:
            return {}, [("name", f"{reading}: empty result")]
        arn = f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:{name}"
        if "logs:ListTagsForResource" in self.account.denied_actions:
            failure = f"listing tags for CloudWatch Logs Log Group ({arn}): "
            return {}, [("name", failure + self._denied("ListTagsForResource", arn))]
        return {"name": name, "id": name, "arn": arn, "retentionInDays": 0, "tags": {}}

    def _denied(self, operation: str, resource: str) -> str:
        return (
            f"operation error CloudWatch Logs: {operation}, https response error StatusCode: "
            "400, RequestID: 00000000-0000-4000-8000-000000000000, AccessDeniedException: User: "
            f"{self.account.caller} is not authorized to perform: logs:{operation} on resource: "
            f"{resource}"
        )

    def _get_role(self, name: str) -> Any:
        """iam:GetRole: the role, or the provider's failure for a role the account lacks."""
        if name not in self.account.roles:
            return {}, [("name", f"reading IAM Role ({name}): couldn't find resource")]
        path = "/aws-service-role/spot.amazonaws.com/" if name.startswith("AWSServiceRole") else "/"
        return {
            "name": name,
            "arn": f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
            "id": name,
            "path": path,
        }

    def _availability_zones(self, args: Props) -> Props:
        """DescribeAvailabilityZones as the provider answers it, filters and exclusions applied.

        The region has six standard zones (zone c is use1-az3, where EKS refuses cluster
        subnets) and an opt-in Local Zone, as us-east-1 does; the zones in the run's
        offline:impairedZones are in state "impaired"."""
        zones = [
            {"name": f"{self.region}{z}", "id": f"use1-az{i}", "type": "availability-zone",
             "opt-in-status": "opt-in-not-required"}
            for i, z in enumerate("abcdef", start=1)
        ]  # fmt: skip
        zones.append(
            {"name": f"{self.region}-bos-1a", "id": "use1-bos1-az1", "type": "local-zone",
             "opt-in-status": "opted-in"}
        )  # fmt: skip
        for zone in zones:
            zone["state"] = (
                "impaired" if zone["name"] in self.account.impaired_zones else "available"
            )
        if args.get("state"):
            zones = [z for z in zones if z["state"] == args["state"]]
        fields = {"zone-type": "type", "opt-in-status": "opt-in-status"}
        for f in args.get("filters") or []:
            zones = [z for z in zones if z[fields[f["name"]]] in f["values"]]
        excluded = set(args.get("excludeZoneIds") or [])
        zones = [z for z in zones if z["id"] not in excluded]
        return {
            "names": [z["name"] for z in zones],
            "zoneIds": [z["id"] for z in zones],
            "id": self.region,
        }

    def _learn_principals(self, state: Props) -> None:
        """Azure creates a service principal for each managed identity it makes: a
        user-assigned identity's, a resource's system identity, AKS's kubelet identity."""
        kubelet = (state.get("identityProfile") or {}).get("kubeletidentity") or {}
        for found in (
            state.get("principalId") if "clientId" in state else None,
            (state.get("identity") or {}).get("principalId"),
            kubelet.get("objectId"),
        ):
            if found:
                self.directory[found] = "ServicePrincipal"

    def _check_principal_type(self, principal: Any, principal_type: Any) -> None:
        """ARM's checks on a role assignment's principal (the request as the SDK sends it:
        pulumi-azure-native authorization/role_assignment.py sends principalType "User" when
        none is given)."""
        if not principal:
            return  # unknown until apply (a preview): ARM is not asked yet
        known = self.directory.get(str(principal))
        if known is None:
            raise ArmError(
                f"PrincipalNotFound: Principal {principal} does not exist in the directory "
                f"{TENANT}."
            )
        if known != principal_type:
            # ARM's text, spelling included (Azure/azure-dev#5814 quotes it).
            raise ArmError(
                f"UnmatchedPrincipalType: The PrincipalId '{principal}' has type '{known}' , which "
                f"is different from specified PrinciaplType '{principal_type}'."
            )

    def _cosmos_account(self, args: Props) -> Any:
        """getDatabaseAccount: an account the tenant has, or ARM's not-found failure."""
        name = str(args.get("accountName"))
        if name not in self.tenant.cosmos_accounts:
            group = args.get("resourceGroupName")
            return {}, [
                (
                    "accountName",
                    f"ResourceNotFound: The Resource 'Microsoft.DocumentDB/databaseAccounts/"
                    f"{name}' under resource group '{group}' was not found (404)",
                )
            ]
        capabilities = self.tenant.cosmos_accounts[name]
        return {"name": name, "capabilities": [{"name": c} for c in capabilities]}

    def acr_token_exchange(self, login_server: str, tenant_id: str, aad_token: str) -> str:
        """ACR's /oauth2/exchange (plain HTTPS, not a provider invoke), answered like ACR."""
        request = {"service": login_server, "tenant": tenant_id, "access_token": aad_token}
        self.invokes.append((f"https://{login_server}/oauth2/exchange", request))
        return f"mock-acr-refresh-token-{_suffix(login_server, aad_token)}"

    # --- resources -----------------------------------------------------------------------
    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, Props]:
        inputs = dict(args.inputs)
        compute = self._outputs.get(args.typ) or next(
            (
                f
                for key, f in self._outputs.items()
                if key.endswith("*") and args.typ.startswith(key[:-1])
            ),
            None,
        )
        if self.preview and not args.resource_id:  # a create (a read or import has an id)
            computed = compute(args.typ, args.name, _known(inputs)) if compute else {}
            computed.pop("__id", None)
            # Empty id: the SDK resolves it as unknown, as it does for a create in a preview.
            return "", {**inputs, **_planned(inputs, computed)}
        state = {**inputs, **(compute(args.typ, args.name, inputs) if compute else {})}
        if args.typ.startswith("azure-native:"):
            self._learn_principals(state)
        resource_id = args.resource_id or state.pop("__id", None) or f"{args.name}-id"
        return resource_id, state

    def _aws_outputs(self) -> dict[str, Callable[[str, str, Props], Props]]:
        region, acct = self.region, ACCOUNT

        def named(inputs: Props, name: str, key: str = "name") -> str:
            return inputs.get(key) or f"{name}-{_suffix(name)}"

        def queue(_t: str, name: str, i: Props) -> Props:
            qname = named(i, name)
            url = f"https://sqs.{region}.amazonaws.com/{acct}/{qname}"
            return {
                "name": qname,
                "arn": f"arn:aws:sqs:{region}:{acct}:{qname}",
                "url": url,
                "__id": url,
            }

        def table(_t: str, name: str, i: Props) -> Props:
            tname = named(i, name)
            return {
                "name": tname,
                "arn": f"arn:aws:dynamodb:{region}:{acct}:table/{tname}",
                "__id": tname,
            }

        def iam(kind: str) -> Callable[[str, str, Props], Props]:
            def out(_t: str, name: str, i: Props) -> Props:
                n = named(i, name)
                return {
                    "name": n,
                    "arn": f"arn:aws:iam::{acct}:{kind}/{n}",
                    "__id": n,
                    "uniqueId": f"AROA{_suffix(n).upper()}",
                }

            return out

        def kms(_t: str, name: str, i: Props) -> Props:
            # A multi-region key's id starts with mrk-; its replicas share it, in their region.
            primary = str(i.get("primaryKeyArn") or "")
            mrk = bool(i.get("multiRegion")) or bool(primary)
            key_id = (
                primary.rsplit("/", 1)[-1]
                if primary
                else f"{'mrk-' if mrk else '0000'}{_suffix(name)}-0000-4000-8000-000000000000"
            )
            at = i.get("region") or region
            return {"arn": f"arn:aws:kms:{at}:{acct}:key/{key_id}", "keyId": key_id, "__id": key_id}

        def ecr(_t: str, name: str, i: Props) -> Props:
            n = named(i, name)
            return {
                "name": n,
                "arn": f"arn:aws:ecr:{region}:{acct}:repository/{n}",
                "repositoryUrl": f"{acct}.dkr.ecr.{region}.amazonaws.com/{n}",
                "registryId": acct,
                "__id": n,
            }

        def ec2(prefix: str, kind: str) -> Callable[[str, str, Props], Props]:
            def out(_t: str, name: str, _i: Props) -> Props:
                rid = f"{prefix}-0{_suffix(name)}{_suffix(name, prefix)[:10]}"
                return {"arn": f"arn:aws:ec2:{region}:{acct}:{kind}/{rid}", "__id": rid}

            return out

        def eip(_t: str, name: str, _i: Props) -> Props:
            return {
                "allocationId": f"eipalloc-0{_suffix(name)}",
                "publicIp": "203.0.113.10",
                "__id": f"eipalloc-0{_suffix(name)}",
            }

        def event_rule(_t: str, name: str, i: Props) -> Props:
            n = named(i, name)
            return {"name": n, "arn": f"arn:aws:events:{region}:{acct}:rule/{n}", "__id": n}

        def topic(_t: str, name: str, i: Props) -> Props:
            n = named(i, name)
            arn = f"arn:aws:sns:{region}:{acct}:{n}"
            return {"name": n, "arn": arn, "__id": arn}  # a topic's id is its ARN

        def subscription(_t: str, name: str, i: Props) -> Props:
            # SNS names a subscription by its topic plus a UUID; an unconfirmed HTTPS one
            # reports "pending confirmation" until the partner confirms it.
            arn = f"{i['topic']}:{_guid(name, 'subscription')}"
            pending = i.get("protocol") in ("http", "https")
            return {"arn": arn, "__id": arn, "pendingConfirmation": pending}

        def dashboard(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "dashboardName")
            arn = f"arn:aws:cloudwatch::{acct}:dashboard/{n}"
            return {"dashboardName": n, "dashboardArn": arn, "__id": n}

        def metric_alarm(_t: str, name: str, i: Props) -> Props:
            n = named(i, name)
            return {"name": n, "arn": f"arn:aws:cloudwatch:{region}:{acct}:alarm:{n}", "__id": n}

        def node_group(_t: str, name: str, i: Props) -> Props:
            n = i.get("nodeGroupName") or f"{name}-{_suffix(name)}"
            return {
                "nodeGroupName": n,
                "status": "ACTIVE",
                "arn": f"arn:aws:eks:{region}:{acct}:nodegroup/{i.get('clusterName')}/{n}/x",
                "__id": f"{i.get('clusterName')}:{n}",
            }

        def eks_cluster(_t: str, name: str, i: Props) -> Props:
            cluster = i.get("name") or f"{name}-eksCluster-{_suffix(name)}"
            oidc_id = hashlib.sha256(cluster.encode()).hexdigest()[:32].upper()
            issuer = f"oidc.eks.{region}.amazonaws.com/id/{oidc_id}"
            endpoint = f"https://{oidc_id}.gr7.{region}.eks.amazonaws.com"
            kubeconfig = _kubeconfig(
                cluster,
                endpoint,
                context="aws",
                user="aws",
                auth={
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster],
                        # pulumi-eks passes providerCredentialOpts.profileName as AWS_PROFILE.
                        **(
                            {"env": [{"name": "AWS_PROFILE", "value": profile}]}
                            if (
                                profile := (i.get("providerCredentialOpts") or {}).get(
                                    "profileName"
                                )
                            )
                            else {}
                        ),
                    }
                },
            )
            return {
                "kubeconfig": kubeconfig,
                "kubeconfigJson": json.dumps(kubeconfig),
                "oidcIssuer": issuer,
                "oidcProviderUrl": f"https://{issuer}",
                "oidcProviderArn": f"arn:aws:iam::{acct}:oidc-provider/{issuer}",
                "clusterSecurityGroupId": f"sg-0{_suffix(cluster, 'cluster')}cafe",
                "nodeSecurityGroupId": f"sg-0{_suffix(cluster, 'cluster')}cafe",
                "autoModeNodeRoleName": "",
            }

        def image(_t: str, _name: str, i: Props) -> Props:
            # docker-build: the digest of what was pushed; `ref` names a tag only when the
            # image has tags (a push by digest has none).
            digest = "sha256:" + hashlib.sha256(json.dumps(i, sort_keys=True).encode()).hexdigest()
            tags = i.get("tags") or []
            return {
                "digest": digest,
                "ref": f"{tags[0].rsplit(':', 1)[0]}@{digest}" if tags else "",
            }

        return {
            "aws:sqs/queue:Queue": queue,
            "aws:dynamodb/table:Table": table,
            "aws:iam/role:Role": iam("role"),
            "aws:iam/policy:Policy": iam("policy"),
            "aws:kms/key:Key": kms,
            "aws:kms/replicaKey:ReplicaKey": kms,
            "aws:ecr/repository:Repository": ecr,
            "aws:ec2/vpc:Vpc": ec2("vpc", "vpc"),
            "aws:ec2/subnet:Subnet": ec2("subnet", "subnet"),
            "aws:ec2/internetGateway:InternetGateway": ec2("igw", "internet-gateway"),
            "aws:ec2/natGateway:NatGateway": ec2("nat", "natgateway"),
            "aws:ec2/routeTable:RouteTable": ec2("rtb", "route-table"),
            "aws:ec2/securityGroup:SecurityGroup": ec2("sg", "security-group"),
            "aws:ec2/eip:Eip": eip,
            "aws:cloudwatch/eventRule:EventRule": event_rule,
            "aws:sns/topic:Topic": topic,
            "aws:cloudwatch/dashboard:Dashboard": dashboard,
            "aws:sns/topicSubscription:TopicSubscription": subscription,
            "aws:cloudwatch/metricAlarm:MetricAlarm": metric_alarm,
            "aws:eks/nodeGroup:NodeGroup": node_group,
            "eks:index:Cluster": eks_cluster,
            "docker-build:index:Image": image,
        }

    def _prometheus_outputs(self) -> dict[str, Callable[[str, str, Props], Props]]:
        """Amazon Managed Service for Prometheus: workspace and managed scraper."""
        region, acct = self.region, ACCOUNT

        def prometheus_workspace(_t: str, name: str, _i: Props) -> Props:
            ws = f"ws-{_guid(name, 'workspace')}"
            arn = f"arn:aws:aps:{region}:{acct}:workspace/{ws}"
            endpoint = f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{ws}/"
            return {"arn": arn, "__id": ws, "prometheusEndpoint": endpoint}

        def scraper(_t: str, name: str, _i: Props) -> Props:
            s = f"s-{_guid(name, 'scraper')}"
            role = f"arn:aws:iam::{acct}:role/aws-service-role/scraper.aps.amazonaws.com/"
            role += f"AWSServiceRoleForAmazonPrometheusScraper_{s[2:10]}"
            return {"arn": f"arn:aws:aps:{region}:{acct}:scraper/{s}", "__id": s, "roleArn": role}

        return {
            "aws:amp/workspace:Workspace": prometheus_workspace,
            "aws:amp/scraper:Scraper": scraper,
        }

    def _azure_outputs(self) -> dict[str, Callable[[str, str, Props], Props]]:
        """azure-native v3 resources: full ARM ids, auto-names, computed endpoints/identities."""
        location = self.location

        def resource_group(_t: str, name: str, i: Props) -> Props:
            rg = named(i, name, "resourceGroupName")
            return {"name": rg, "__id": _group_id(rg), "location": i.get("location", location)}

        def storage_account(_t: str, name: str, i: Props) -> Props:
            # Storage accounts: 3-24 chars of a-z0-9, so the auto-name has no hyphens.
            acct = i.get("accountName") or f"{name.replace('-', '')[:17]}{_suffix(name)}"
            endpoints = {
                s: f"https://{acct}.{s}.core.windows.net/"
                for s in ("blob", "queue", "table", "file")
            }
            return {
                "name": acct,
                "__id": provider_id(i, "Microsoft.Storage/storageAccounts", acct),
                "primaryEndpoints": endpoints,
                "provisioningState": "Succeeded",
            }

        def queue(_t: str, name: str, i: Props) -> Props:
            q = named(i, name, "queueName")
            acct = f"Microsoft.Storage/storageAccounts/{i['accountName']}"
            return {"name": q, "__id": provider_id(i, acct, f"queueServices/default/queues/{q}")}

        def blob_container(_t: str, name: str, i: Props) -> Props:
            c = named(i, name, "containerName")
            acct = f"Microsoft.Storage/storageAccounts/{i['accountName']}"
            return {"name": c, "__id": provider_id(i, acct, f"blobServices/default/containers/{c}")}

        def event_grid_topic(_t: str, name: str, i: Props) -> Props:
            n, region = named(i, name, "topicName"), i.get("location", location)
            # Event Grid gives a topic one endpoint per region, and its own identity.
            identity = dict(i.get("identity") or {})
            if identity.get("type") == "SystemAssigned":
                identity.update(principalId=_guid(n, "principal"), tenantId=TENANT)
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.EventGrid/topics", n),
                "endpoint": f"https://{n}.{region}-1.eventgrid.azure.net/api/events",
                "identity": identity,
                "provisioningState": "Succeeded",
            }

        def grouped(provider_type: str, key: str) -> Callable[[str, str, Props], Props]:
            """A resource of the group, named by ``key`` or auto-named."""

            def out(_t: str, name: str, i: Props) -> Props:
                n = named(i, name, key)
                return {"name": n, "__id": provider_id(i, provider_type, n)}

            return out

        def event_subscription(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "eventSubscriptionName")
            rid = f"{i['scope']}/providers/Microsoft.EventGrid/eventSubscriptions/{n}"
            return {"name": n, "__id": rid, "provisioningState": "Succeeded"}

        def cosmos_account(_t: str, name: str, i: Props) -> Props:
            acct = named(i, name, "accountName")
            return {
                "name": acct,
                "__id": provider_id(i, "Microsoft.DocumentDB/databaseAccounts", acct),
                "documentEndpoint": f"https://{acct}.documents.azure.com:443/",
                "provisioningState": "Succeeded",
            }

        def cosmos_child(kind: str, key: str) -> Callable[[str, str, Props], Props]:
            def out(_t: str, name: str, i: Props) -> Props:
                child = i.get(key) or _guid(name, kind)
                acct = f"Microsoft.DocumentDB/databaseAccounts/{i['accountName']}"
                return {"name": child, "__id": provider_id(i, acct, f"{kind}/{child}")}

            return out

        def identity(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "resourceName")
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.ManagedIdentity/userAssignedIdentities", n),
                "clientId": _guid(n, "client"),
                "principalId": _guid(n, "principal"),
                "tenantId": TENANT,
            }

        def federated_credential(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "federatedIdentityCredentialResourceName")
            parent = f"Microsoft.ManagedIdentity/userAssignedIdentities/{i['resourceName']}"
            return {"name": n, "__id": provider_id(i, parent, f"federatedIdentityCredentials/{n}")}

        def role_assignment(_t: str, name: str, i: Props) -> Props:
            self._check_principal_type(i.get("principalId"), i.get("principalType"))
            n = i.get("roleAssignmentName") or _guid(name, "role-assignment")
            rid = f"{i['scope']}/providers/Microsoft.Authorization/roleAssignments/{n}"
            return {"name": n, "__id": rid}

        def role_definition(_t: str, name: str, i: Props) -> Props:
            guid = i.get("roleDefinitionId") or _guid(name, "role-definition")
            # Custom roles get a subscription-level id whatever scope they are created at.
            rid = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
            rid += f"roleDefinitions/{guid}"
            return {"name": guid, "__id": rid, "type": "Microsoft.Authorization/roleDefinitions"}

        def managed_cluster(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "resourceName")
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.ContainerService/managedClusters", n),
                "fqdn": _aks_fqdn(n, location),
                "nodeResourceGroup": i.get("nodeResourceGroup")
                or f"MC_{i['resourceGroupName']}_{n}_{location}",
                "oidcIssuerProfile": {
                    "enabled": True,
                    "issuerURL": f"https://{location}.oic.prod-aks.azure.com/{TENANT}/"
                    f"{_guid(n, 'oidc')}/",
                },
                "identity": {
                    "type": "SystemAssigned",
                    "principalId": _guid(n, "cluster-principal"),
                    "tenantId": TENANT,
                },
                "identityProfile": {
                    "kubeletidentity": {
                        "clientId": _guid(n, "kubelet-client"),
                        "objectId": _guid(n, "kubelet-object"),
                        "resourceId": f"{_group_id(f'{n}-nodes')}/providers/Microsoft."
                        f"ManagedIdentity/userAssignedIdentities/{n}-agentpool",
                    }
                },
                "provisioningState": "Succeeded",
            }

        def registry(_t: str, name: str, i: Props) -> Props:
            n = i.get("registryName") or f"{name.replace('-', '')}{_suffix(name)}"
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.ContainerRegistry/registries", n),
                "loginServer": f"{n.lower()}.azurecr.io",
            }

        return {
            "azure-native:resources:ResourceGroup": resource_group,
            "azure-native:storage:StorageAccount": storage_account,
            "azure-native:storage:Queue": queue,
            "azure-native:storage:BlobContainer": blob_container,
            "azure-native:eventgrid:Topic": event_grid_topic,
            "azure-native:eventgrid:EventSubscription": event_subscription,
            "azure-native:monitor:ActionGroup": grouped(
                "Microsoft.Insights/actionGroups", "actionGroupName"
            ),
            "azure-native:monitor:MetricAlert": grouped(
                "Microsoft.Insights/metricAlerts", "ruleName"
            ),
            "azure-native:applicationinsights:Workbook": grouped(
                "Microsoft.Insights/workbooks", "resourceName"
            ),
            "azure-native:monitor:AzureMonitorWorkspace": grouped(
                "Microsoft.Monitor/accounts", "azureMonitorWorkspaceName"
            ),
            **self._azure_monitor_outputs(),
            "azure-native:monitor:ScheduledQueryRule": grouped(
                "Microsoft.Insights/scheduledQueryRules", "ruleName"
            ),
            "azure-native:alertsmanagement:PrometheusRuleGroup": grouped(
                "Microsoft.AlertsManagement/prometheusRuleGroups", "ruleGroupName"
            ),
            "azure-native:operationalinsights:Workspace": grouped(
                "Microsoft.OperationalInsights/workspaces", "workspaceName"
            ),
            "azure-native:cosmosdb:DatabaseAccount": cosmos_account,
            "azure-native:cosmosdb:TableResourceTable": cosmos_child("tables", "tableName"),
            "azure-native:cosmosdb:TableResourceTableRoleAssignment": cosmos_child(
                "tableRoleAssignments", "roleAssignmentId"
            ),
            "azure-native:managedidentity:UserAssignedIdentity": identity,
            "azure-native:managedidentity:FederatedIdentityCredential": federated_credential,
            "azure-native:authorization:RoleAssignment": role_assignment,
            "azure-native:authorization:RoleDefinition": role_definition,
            "azure-native:containerservice:ManagedCluster": managed_cluster,
            "azure-native:containerregistry:Registry": registry,
        }

    def _azure_monitor_outputs(self) -> dict[str, Callable[[str, str, Props], Props]]:
        """Data collection endpoints and rules (their ingestion endpoint and immutable id) and
        Log Analytics tables."""
        location = self.location

        def collection_endpoint(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "dataCollectionEndpointName")
            ingest = f"https://{n}-{_suffix(n, 'dce')[:4]}.{location}-1.ingest.monitor.azure.com"
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.Insights/dataCollectionEndpoints", n),
                "logsIngestion": {"endpoint": ingest},
            }

        def collection_rule(_t: str, name: str, i: Props) -> Props:
            n = named(i, name, "dataCollectionRuleName")
            return {
                "name": n,
                "__id": provider_id(i, "Microsoft.Insights/dataCollectionRules", n),
                "immutableId": f"dcr-{_guid(n, 'dcr').replace('-', '')}",
            }

        def log_table(_t: str, _name: str, i: Props) -> Props:
            workspace = f"Microsoft.OperationalInsights/workspaces/{i['workspaceName']}"
            table = i["tableName"]
            return {"name": table, "__id": provider_id(i, workspace, f"tables/{table}")}

        return {
            "azure-native:monitor:DataCollectionEndpoint": collection_endpoint,
            "azure-native:monitor:DataCollectionRule": collection_rule,
            "azure-native:operationalinsights:Table": log_table,
        }

    def _deployer_claims(self, audience: str) -> Props:
        """An ARM access token's claims as Entra issues them to the deployer: a person's has
        `scp` (delegated), an application's `idtyp: app` and `roles` instead."""
        claims: Props = {"aud": audience, "oid": DEPLOYER_OBJECT_ID, "tid": TENANT}
        if self.tenant.deployer_type == "User":
            return {**claims, "scp": "user_impersonation", "idtyp": "user"}
        return {**claims, "idtyp": "app", "roles": []}

    def _azure_invokes(self) -> dict[str, Callable[[Props], Props]]:
        """Invokes whose answer depends on their arguments (cluster credentials, tokens)."""
        location = self.location

        def credentials(user: str, auth: Props) -> Callable[[Props], Props]:
            def answer(a: Props) -> Props:
                cluster = a["resourceName"]
                server = f"https://{_aks_fqdn(cluster, location)}:443"
                kubeconfig = _kubeconfig(cluster, server, context=cluster, user=user, auth=auth)
                value = base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode()
                return {"kubeconfigs": [{"name": user, "value": value}]}

            return answer

        # What AKS returns for an Entra cluster before kubelogin conversion: devicecode login.
        entra_user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token", "--login", "devicecode", "--server-id", "aks-server"],
            }
        }
        admin_user = {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}
        return {
            "azure-native:containerservice:listManagedClusterUserCredentials": credentials(
                "clusterUser", entra_user
            ),
            "azure-native:containerservice:listManagedClusterAdminCredentials": credentials(
                "clusterAdmin", admin_user
            ),
            "azure-native:authorization:getClientToken": lambda a: {
                "token": _jwt(self._deployer_claims(a.get("endpoint") or "arm"))
            },
        }

    def _kubernetes_outputs(self) -> dict[str, Callable[[str, str, Props], Props]]:
        def k8s_object(_t: str, name: str, i: Props) -> Props:
            # The provider auto-names objects that carry no metadata.name.
            meta = dict(i.get("metadata") or {})
            meta.setdefault("name", f"{name}-{_suffix(name)}")
            meta.setdefault("uid", f"0000{_suffix(name, 'uid')}-0000-4000-8000-000000000000")
            return {"metadata": meta}

        def release(_t: str, name: str, i: Props) -> Props:
            rname = i.get("name") or f"{name}-{_suffix(name)}"
            status = {
                "name": rname,
                "namespace": i.get("namespace", "default"),
                "status": "deployed",
                "version": i.get("version"),
                "revision": 1,
            }
            return {"name": rname, "status": status}

        def readiness(_t: str, _name: str, i: Props) -> Props:
            # A Readiness check (components/azure/readiness.py) whose probe succeeded at once.
            return {"attempts": 3, "__id": f"{_name}-ready"}

        def random_password(_t: str, name: str, i: Props) -> Props:
            return {"result": f"mock-{_suffix(name, 'password')}" * 6, "__id": "none"}

        return {
            "pulumi-python:dynamic:Resource": readiness,
            "random:index/randomPassword:RandomPassword": random_password,
            "kubernetes:helm.sh/v3:Release": release,
            # Every other kubernetes:<group>/<version>:<Kind> object.
            "kubernetes:*": k8s_object,
        }


class ArmError(Exception):
    """What ARM answers a bad request with (the provider fails the operation with it)."""


def _jwt(claims: Props) -> str:
    """An unsigned JWT with ``claims`` (only its payload is ever read)."""

    def part(doc: Props) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


@dataclass(frozen=True)
class TenantState:
    """What the mocked Entra tenant and subscription already hold: the deployer's type, the
    principals config names (object id -> User, Group or ServicePrincipal) and existing Cosmos DB
    accounts (name -> capability names). Set per run with the config keys offline:deployerType,
    offline:directory and offline:cosmosAccounts, which the program never sees."""

    deployer_type: str = "User"
    directory: Mapping[str, str] = field(default_factory=dict)
    cosmos_accounts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class DuplicateResourceURNError(Exception):
    """The engine's refusal of a second resource with a URN it has seen in this deployment."""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor, plus a record of parents, dependencies and providers, the
    engine's URNs (the stock monitor keeps only the parent's last type, so two resources the
    engine tells apart could share one) and the engine's refusal of a duplicate URN (which the
    stock monitor silently overwrites)."""

    def __init__(self, mocks: ProviderMocks) -> None:
        super().__init__(mocks)
        self.registrations: dict[str, tuple[Any, bool]] = {}
        self.order: list[str] = []
        self.claimed: set[str] = set()  # the URNs taken so far
        self._lock = threading.Lock()  # the SDK registers from several executor threads

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        stack_and_project = f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}"
        return engine_urn(stack_and_project, parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        self._claim(request)
        response = super().RegisterResource(request)
        if request.type != ROOT_STACK_TYPE:
            self.registrations[response.urn] = (request, bool(request.custom))
            self.order.append(response.urn)
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        # A read (Resource.get) takes a URN like a registration (the engine's GenerateReadSteps
        # calls the same generateURN), so it collides with one of the same parent, type and name.
        self._claim(request)
        return super().ReadResource(request)

    def _claim(self, request: Any) -> None:
        """Refuse a URN already taken as the engine does: at registration, failing the program
        (aliases take no URN, so they are not checked here)."""
        urn = self.make_urn(request.parent, request.type, request.name)
        with self._lock:
            if urn in self.claimed:
                raise DuplicateResourceURNError(duplicate_urn_message(urn))
            self.claimed.add(urn)


@dataclass(frozen=True)
class AccountFacts:
    """The mocked account as a run finds it (config keys ACCOUNT_KEYS: the caller's ARN as is,
    the others as JSON)."""

    roles: frozenset[str] = frozenset()  # IAM roles that exist (a fresh account: none)
    caller: str = f"arn:aws:iam::{ACCOUNT}:user/deployer"  # who runs the program
    cluster_tags: Mapping[str, str] | None = None  # the stack's EKS cluster exists, tagged so
    log_groups: frozenset[str] = frozenset()  # log groups that exist
    impaired_zones: frozenset[str] = frozenset()  # zones in state "impaired" today
    denied_actions: frozenset[str] = frozenset()  # IAM actions the caller may not call


ACCOUNT_KEYS = {
    "offline:existingIamRoles": "roles",
    "offline:callerArn": "caller",
    "offline:existingCluster": "cluster_tags",
    "offline:existingLogGroups": "log_groups",
    "offline:impairedZones": "impaired_zones",
    "offline:deniedActions": "denied_actions",
}


def account_facts(config: dict[str, str]) -> AccountFacts:
    """Takes the offline: keys out of ``config`` (the program never sees them)."""
    facts: dict[str, Any] = {}
    for key, attribute in ACCOUNT_KEYS.items():
        if key in config:
            raw = config.pop(key)
            value = raw if attribute == "caller" else json.loads(raw)
            facts[attribute] = frozenset(value) if isinstance(value, list) else value
    return AccountFacts(**facts)


DEPLOYER_TYPE_KEY = "offline:deployerType"
DIRECTORY_KEY = "offline:directory"
COSMOS_ACCOUNTS_KEY = "offline:cosmosAccounts"


def stack_names() -> list[str]:
    """The stacks this repository configures: one Pulumi.<stack>.yaml each."""
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml")
    )


def stack_config(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Config as the CLI hands it to the program: project defaults, stack file, overrides."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {
        f"{PROJECT}:{key}": spec["default"]
        for key, spec in project.get("config", {}).items()
        if "default" in spec
    }
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config", {}))
    values.update({k if ":" in k else f"{PROJECT}:{k}": v for k, v in (overrides or {}).items()})
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def run_stack(
    stack: str, overrides: Mapping[str, str] | None = None, *, preview: bool = False
) -> StackRun:
    """Run the program for ``stack`` under mocks; cached per (stack, overrides, preview).

    ``preview``: as the first ``pulumi preview`` of a new stack (computed outputs unknown)."""
    return _run_cached(stack, tuple(sorted((overrides or {}).items())), preview)


@cache
def _run_cached(stack: str, overrides: tuple[tuple[str, str], ...], preview: bool) -> StackRun:
    config = stack_config(stack, dict(overrides))
    account = account_facts(config)
    tenant = TenantState(
        deployer_type=config.pop(DEPLOYER_TYPE_KEY, "User"),
        directory=json.loads(config.pop(DIRECTORY_KEY, "{}")),
        cosmos_accounts={
            k: tuple(v) for k, v in json.loads(config.pop(COSMOS_ACCOUNTS_KEY, "{}")).items()
        },
    )
    mocks = ProviderMocks(
        config.get("aws:region", ""),
        config.get("azure-native:location", ""),
        account,
        tenant,
        preview=preview,
    )
    with _registry_login(mocks, config.get(f"{PROJECT}:cloud", "")):
        return run_program(
            lambda: runpy.run_path(str(ROOT / "__main__.py")), stack, config, mocks, preview=preview
        )


def run_program(
    program: Callable[[], object],
    stack: str,
    config: Mapping[str, str],
    mocks: ProviderMocks,
    *,
    preview: bool = False,
) -> StackRun:
    """Run ``program`` as the stack's Pulumi program under ``mocks``, recording what it does."""
    monitor = RecordingMonitor(mocks)
    # A fresh root stack per run, so two stacks in one process never share state.
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config))
    settings = pulumi_settings.SETTINGS
    settings.rpc_manager.clear()
    settings.outputs.clear()

    from pulumi.runtime.stack import run_pulumi_func  # noqa: PLC0415

    try:
        _sync_await(run_pulumi_func(program))
    except Exception as exc:
        raise ProgramError(exc, _recorded(monitor)) from exc
    root = pulumi_settings.get_root_resource()
    exported = {
        name: pulumi.Output.from_input(value)
        for name, value in (root.outputs if root else {}).items()  # type: ignore[attr-defined]
    }
    outputs = {name: _sync_await(value.future()) for name, value in exported.items()}
    secret = frozenset(n for n, v in exported.items() if _sync_await(v.is_secret()))
    return StackRun(
        stack=stack,
        resources=_recorded(monitor),
        outputs=outputs,
        secret_outputs=secret,
        invokes=mocks.invokes,
    )


def _recorded(monitor: RecordingMonitor) -> list[RecordedResource]:
    resources = []
    for urn in monitor.order:
        request, custom = monitor.registrations[urn]
        registered = monitor.resources[urn]
        resources.append(
            RecordedResource(
                type=request.type,
                name=request.name,
                urn=urn,
                id=registered.id or "",
                inputs=_plain(pulumi.runtime.rpc.deserialize_properties(request.object)),
                outputs=_plain(registered.state),
                parent=request.parent,
                dependencies=tuple(request.dependencies),
                custom=custom,
                provider=request.provider,
                retain_on_delete=bool(request.retainOnDelete),
                protect=bool(request.protect),
                aliases=tuple(_alias_urn(urn, request, a) for a in request.aliases),
                alias_specs=tuple(_alias_spec(a) for a in request.aliases),
                import_id=request.importId,
                ignore_changes=tuple(request.ignoreChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        )
    return resources


def _alias_spec(alias: Any) -> AliasSpec:
    if alias.urn:
        return AliasSpec(urn=alias.urn)
    spec = alias.spec
    return AliasSpec("", spec.name, spec.type, spec.parentUrn, spec.noParent)


def _alias_urn(urn: str, request: Any, alias: Any) -> str:
    """An explicit alias as the URN the engine collapses it to (its parent's whole type chain,
    then the type and name); what the engine adds from the parent's aliases is tests/urns.py's."""
    if alias.urn:
        return alias.urn
    spec = alias.spec
    parent = "" if spec.noParent else (spec.parentUrn or request.parent)
    return engine_urn(split(urn)[0], parent, spec.type or request.type, spec.name or request.name)


@contextlib.contextmanager
def _registry_login(mocks: ProviderMocks, cloud: str) -> Iterator[None]:
    """Route the Azure image's registry token exchange to the mocks instead of the network."""
    if cloud != "azure":
        yield
        return
    from components.azure import image  # noqa: PLC0415 (only Azure runs need it)

    with mock.patch.object(image, "acr_refresh_token", mocks.acr_token_exchange):
        yield


def _known(value: Any) -> Any:
    """``value`` with every unknown (preview) replaced by None, for the output computations."""
    if isinstance(value, pulumi.output.Unknown):
        return None
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


def _planned(inputs: Props, computed: Props) -> Props:
    """What a create's preview returns beyond the inputs (as given, unknowns included): each
    value the provider computes (new, or not the input) as unknown; nested objects key by key."""
    planned: Props = {}
    for key, value in computed.items():
        given = inputs.get(key)
        if isinstance(given, dict) and isinstance(value, dict):
            planned[key] = {**given, **_planned(given, value)}
        elif key not in inputs or _known(given) != value:
            planned[key] = pulumi.runtime.rpc.UNKNOWN
    return planned


def _plain(value: Any) -> Any:
    """Drop the SDK's secret wrappers so tests compare plain JSON-like values; an unknown value
    (preview) is the engine's sentinel string, as a policy pack receives it."""
    if isinstance(value, pulumi.output.Unknown):
        return pulumi.runtime.rpc.UNKNOWN
    if isinstance(value, dict):
        if value.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
