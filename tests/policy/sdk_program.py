"""Register resources through the real provider SDKs under Pulumi mocks and print what the engine
would receive (type, name, inputs) as JSON. Run in a subprocess by test_sdk_shapes (mocks are
process-global). Each resource is built twice: ``ok-*`` compliant and ``bad-*`` with one value
wrong, so the test proves the rules read the SDKs' real property names and type tokens."""

from __future__ import annotations

import json
import sys
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, containerservice, cosmosdb, storage

from tests.policy import fixtures as f

RECORDED: list[dict[str, Any]] = []


class Recorder(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        RECORDED.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def build_aws(ok: bool, n: str) -> None:
    aws.sqs.Queue(
        f"{n}-queue",
        sqs_managed_sse_enabled=ok,
        visibility_timeout_seconds=120,
        redrive_policy=f.work_queue().inputs["redrivePolicy"],
    )
    aws.dynamodb.Table(
        f"{n}-table",
        hash_key="pk",
        attributes=[{"name": "pk", "type": "S"}],
        point_in_time_recovery={"enabled": ok},
        server_side_encryption={"enabled": True},
    )
    trust = f.irsa_trust("system:serviceaccount:edw:consumer" if ok else "system:*")
    aws.iam.Role(f"{n}-role", assume_role_policy=f.doc(trust))
    statement = {"Effect": "Allow", "Action": "sqs:ReceiveMessage" if ok else "*", "Resource": "q"}
    aws.iam.RolePolicy(f"{n}-policy", role="consumer", policy=f.doc(statement))
    aws.ecr.Repository(f"{n}-repo", image_scanning_configuration={"scan_on_push": ok})
    aws.eks.Cluster(
        f"{n}-cluster",
        role_arn="arn:aws:iam::123456789012:role/eks",
        encryption_config={"provider": {"key_arn": "k"}, "resources": ["secrets" if ok else "x"]},
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        vpc_config={"subnet_ids": ["s-1"], "public_access_cidrs": ["203.0.113.0/24"]},
    )


def build_kubernetes(ok: bool, n: str) -> None:
    k8s.helm.v3.Release(f"{n}-release", chart="karpenter", version="1.8.1" if ok else None)
    container = k8s.core.v1.ContainerArgs(
        name="consumer",
        image="edw/consumer:0.1.0" if ok else "edw/consumer:latest",
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "250m", "memory": "256Mi"}, limits={"cpu": "1", "memory": "512Mi"}
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            read_only_root_filesystem=True, allow_privilege_escalation=False
        ),
        liveness_probe={"http_get": {"path": "/healthz", "port": 9464}},
        readiness_probe={"http_get": {"path": "/readyz", "port": 9464}},
    )
    k8s.apps.v1.Deployment(
        f"{n}-deployment",
        metadata={"name": "consumer", "namespace": "edw"},
        spec=k8s.apps.v1.DeploymentSpecArgs(
            selector={"match_labels": {"app": "consumer"}},
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata={"labels": {"app": "consumer"}},
                spec=k8s.core.v1.PodSpecArgs(
                    security_context=k8s.core.v1.PodSecurityContextArgs(run_as_non_root=True),
                    containers=[container],
                ),
            ),
        ),
    )
    limits = {"cpu": "64", "memory": "256Gi"} if ok else None
    pool = f.nodepool("spot", ["spot", "on-demand"], limits).inputs
    k8s.apiextensions.CustomResource(
        f"{n}-nodepool", api_version=pool["apiVersion"], kind="NodePool", spec=pool["spec"]
    )
    scaled = f.scaled_object(max_replicas=30 if ok else None).inputs
    k8s.apiextensions.CustomResource(
        f"{n}-scaledobject",
        api_version=scaled["apiVersion"],
        kind=scaled["kind"],
        metadata=scaled["metadata"],
        spec=scaled["spec"],
    )


def build_azure(ok: bool, n: str) -> None:
    storage.StorageAccount(
        f"{n}-storage",
        resource_group_name="edw-dev",
        kind="StorageV2",
        sku={"name": "Standard_LRS"},
        enable_https_traffic_only=True,
        minimum_tls_version="TLS1_2" if ok else "TLS1_0",
        allow_blob_public_access=False,
        allow_shared_key_access=False,
    )
    cosmosdb.DatabaseAccount(
        f"{n}-cosmos",
        resource_group_name="edw-dev",
        database_account_offer_type="Standard",
        locations=[{"location_name": "westeurope"}],
        disable_local_auth=ok,
        minimal_tls_version="Tls12",
    )
    containerservice.ManagedCluster(
        f"{n}-aks",
        resource_group_name="edw-dev",
        oidc_issuer_profile={"enabled": True},
        security_profile={"workload_identity": {"enabled": ok}},
        disable_local_accounts=True,
        aad_profile={"enable_azure_rbac": True, "managed": True},
        network_profile={"network_plugin": "azure", "network_policy": "cilium"},
    )
    authorization.RoleAssignment(
        f"{n}-role-assignment",
        scope=f.QUEUE_SCOPE if ok else f.RESOURCE_GROUP,
        role_definition_id=f.role_assignment(f.QUEUE_SCOPE).inputs["roleDefinitionId"],
        principal_id="11111111-1111-1111-1111-111111111111",
        principal_type="ServicePrincipal",
    )


@pulumi.runtime.test
def program() -> pulumi.Output[None]:
    for ok, prefix in ((True, "ok"), (False, "bad")):
        build_aws(ok, prefix)
        build_kubernetes(ok, prefix)
        build_azure(ok, prefix)
    return pulumi.Output.from_input(None)


if __name__ == "__main__":
    pulumi.runtime.set_mocks(Recorder(), project="edw", stack="shapes", preview=False)
    program()
    json.dump(RECORDED, sys.stdout)
