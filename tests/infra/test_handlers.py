"""Handlers (docs/handlers.md) on both stacks through the mocks: the sidecar in the workflow's
pods, what it is and is not given, its image, the consumer's right to publish what it emits, and
every bad handler setting refused before anything is created."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from components.azure.roles import EVENTGRID_DATA_SENDER
from components.observability.scrape import consumer_job
from components.settings import Handler
from components.versions import AKS_SUPPORTED_MINORS, EKS_KUBERNETES_VERSIONS
from policy.offline import STACK_CONFIG_DIR, PackConfig, evaluate
from stacks import config as config_module
from stacks.config import ConfigError, EdwConfig
from stacks.offline import ProgramError, StackRun, run_stack
from tests.k8s_schema import validate_custom_resource

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CLOUD = {"aws": "aws", "dev": "azure"}
SKIP_ANNOTATION = {
    "aws": "eks.amazonaws.com/skip-containers",
    "dev": "azure.workload.identity/skip-containers",
}
SHIP_IMAGE = "ghcr.io/acme/ship@sha256:" + "5" * 64
WORKFLOWS = [
    {"name": "work"},
    # Built from a directory of the repository (app/ has a Dockerfile), its CPU limit its own.
    {"name": "orders", "handler": {"build": "app", "port": 8080}, "handlerCpuLimit": "2"},
    # A job workflow with a prebuilt image on its own port.
    {"name": "ship", "mode": "job", "handler": {"image": SHIP_IMAGE, "port": 3000}},
]


@pytest.fixture(scope="module", params=["aws", "dev"])
def run(request: pytest.FixtureRequest) -> StackRun:
    return run_stack(request.param, {"workflows": json.dumps(WORKFLOWS)})


def pod_of(run: StackRun, workflow: str) -> dict[str, Any]:
    """The pod template of a workflow's Deployment or ScaledJob."""
    name = "edw-consumer" if workflow == "work" else f"edw-{workflow}-consumer"
    for d in run.of_type(DEPLOYMENT):
        if d.inputs["metadata"]["name"] == name:
            return d.inputs["spec"]["template"]
    for job in run.custom_resources("ScaledJob"):
        if job.inputs["metadata"]["name"] == name:
            return job.inputs["spec"]["jobTargetRef"]["template"]
    raise AssertionError(f"no workload {name}")


def consumer_env(template: dict[str, Any]) -> dict[str, str]:
    (consumer,) = template["spec"]["containers"]
    assert consumer["name"] == "consumer"
    return {e["name"]: e["value"] for e in consumer["env"]}


def handler_of(template: dict[str, Any]) -> dict[str, Any]:
    (handler,) = template["spec"]["initContainers"]
    return handler


# --- the pod ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", ["orders", "ship"])
def test_the_handler_is_a_hardened_native_sidecar_with_tcp_probes(
    run: StackRun, workflow: str
) -> None:
    template = pod_of(run, workflow)
    handler = handler_of(template)
    port = 8080 if workflow == "orders" else 3000
    assert handler["name"] == "handler"
    # An init container that keeps running: started (and probed) before the consumer, stopped
    # after it.
    assert handler["restartPolicy"] == "Always"
    assert handler["ports"] == [{"name": "handler", "containerPort": port}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert handler[probe]["tcpSocket"] == {"port": "handler"}, probe
    # The same hardening as the consumer, and a /tmp of its own.
    (consumer,) = template["spec"]["containers"]
    hardening = handler["securityContext"]
    assert hardening == consumer["securityContext"]
    assert (hardening["runAsNonRoot"], hardening["runAsUser"]) == (True, 10001)
    assert (hardening["readOnlyRootFilesystem"], hardening["allowPrivilegeEscalation"]) == (
        True,
        False,
    )
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    (mount,) = handler["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    assert mount["name"] != consumer["volumeMounts"][0]["name"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes[mount["name"]]["emptyDir"] == {"sizeLimit": "64Mi"}
    assert template["spec"]["automountServiceAccountToken"] is False
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_handler_gets_its_resources_from_settings_with_the_workflows_overrides(
    run: StackRun,
) -> None:
    assert handler_of(pod_of(run, "orders"))["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "2", "memory": "256Mi"},  # the workflow's own CPU limit
    }
    assert handler_of(pod_of(run, "ship"))["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_the_consumer_reaches_the_handler_on_loopback_and_serves_on_9464(run: StackRun) -> None:
    for workflow, port in (("orders", 8080), ("ship", 3000)):
        template = pod_of(run, workflow)
        env = consumer_env(template)
        assert env["EDW_HANDLER_URL"] == f"http://127.0.0.1:{port}/"
        assert env["EDW_HTTP_PORT"] == "9464"
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "9464"
        (consumer,) = template["spec"]["containers"]
        assert consumer["ports"] == [{"name": "http", "containerPort": 9464}]
    # The handler is told only its port (the Knative convention), nothing of the stack.
    assert handler_of(pod_of(run, "ship"))["env"] == [{"name": "PORT", "value": "3000"}]


def test_a_workflow_without_handler_keeps_todays_pod(run: StackRun) -> None:
    template = pod_of(run, "work")
    assert "initContainers" not in template["spec"]
    assert "EDW_HANDLER_URL" not in consumer_env(template)
    assert "EDW_ROUTER" not in consumer_env(template)
    assert set(template["metadata"]["annotations"]) == {
        "prometheus.io/scrape",
        "prometheus.io/port",
    }
    assert [v["name"] for v in template["spec"]["volumes"]] == ["tmp"]


def test_the_identity_webhook_skips_the_handler(run: StackRun) -> None:
    """Both webhooks inject credentials into every container, init containers included, unless
    the pod's skip-containers annotation names it (components/k8s/consumer.py cites the
    webhooks' source)."""
    for workflow in ("orders", "ship"):
        template = pod_of(run, workflow)
        annotations = template["metadata"]["annotations"]
        assert annotations[SKIP_ANNOTATION[run.stack]] == handler_of(template)["name"]
        other = SKIP_ANNOTATION["dev" if run.stack == "aws" else "aws"]
        assert other not in annotations
    assert SKIP_ANNOTATION[run.stack] not in pod_of(run, "work")["metadata"]["annotations"]


def test_pods_with_their_handler_validate_against_the_pod_schema_in_kedas_crd(
    run: StackRun,
) -> None:
    (job,) = run.custom_resources("ScaledJob")
    assert validate_custom_resource(job.inputs, CLOUD[run.stack]) == []
    # The service's pod template too: the CRD embeds the core PodTemplateSpec schema, so the
    # Deployment's template is checked strictly in the job's place (a job pod never restarts).
    service = copy.deepcopy(job.inputs)
    template = copy.deepcopy(pod_of(run, "orders"))
    template["spec"]["restartPolicy"] = "Never"
    service["spec"]["jobTargetRef"]["template"] = template
    assert validate_custom_resource(service, CLOUD[run.stack]) == []


def test_a_job_with_a_handler_has_time_for_the_handler_to_start(run: StackRun) -> None:
    """The sidecar starts before the consumer: a second image pull and its startup probe come
    before any work, so the job's deadline holds them too (else it kills a job mid-batch)."""
    (job,) = run.custom_resources("ScaledJob")
    target = job.inputs["spec"]["jobTargetRef"]
    probe = handler_of(target["template"])["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 60
    bare = [{**w, "handler": None} if w["name"] == "ship" else w for w in WORKFLOWS]
    bare = [{k: v for k, v in w.items() if v is not None} for w in bare]
    (plain,) = run_stack(run.stack, {"workflows": json.dumps(bare)}).custom_resources("ScaledJob")
    extra = (
        target["activeDeadlineSeconds"]
        - plain.inputs["spec"]["jobTargetRef"]["activeDeadlineSeconds"]
    )
    assert extra == 120 + 60  # its image pull on a fresh node, and its startup probe


def test_the_accepted_kubernetes_versions_all_run_native_sidecars() -> None:
    """Sidecar containers (restartPolicy Always on an init container) are on by default from
    Kubernetes 1.29 (beta; GA in 1.33): every version either cloud accepts must have them."""
    for version in (*EKS_KUBERNETES_VERSIONS, *AKS_SUPPORTED_MINORS):
        assert tuple(map(int, version.split("."))) >= (1, 29), version


def test_the_scrape_job_keeps_only_the_consumer_container() -> None:
    keep = [r for r in consumer_job("edw")["relabel_configs"] if r.get("action") == "keep"]
    assert {"source_labels": ["__meta_kubernetes_pod_container_name"], "action": "keep",
            "regex": "consumer"} in keep  # fmt: skip


def test_a_stack_with_handlers_breaks_no_mandatory_rule(run: StackRun) -> None:
    config = PackConfig.load(STACK_CONFIG_DIR / f"{run.stack}.json")
    assert [v for v in evaluate(run.resources, config) if v.mandatory] == []


def test_a_first_preview_with_handlers_breaks_no_mandatory_rule(run: StackRun) -> None:
    """A build handler's image is unknown until `up` pushes it: rules must not read it as unset."""
    preview = run_stack(run.stack, {"workflows": json.dumps(WORKFLOWS)}, preview=True)
    config = PackConfig.load(STACK_CONFIG_DIR / f"{run.stack}.json")
    assert [v for v in evaluate(preview.resources, config) if v.mandatory] == []


# --- the image ----------------------------------------------------------------------------------


def test_a_built_handler_is_pushed_by_digest_to_a_repository_of_its_own(run: StackRun) -> None:
    images = {i.name: i for i in run.of_type("docker-build:index:Image")}
    assert set(images) == {"consumer-image-build", "orders-handler-image-build"}
    built = images["orders-handler-image-build"].inputs
    assert built["context"] == {"location": "app"}
    assert built["dockerfile"] == {"location": "app/Dockerfile"}
    (export,) = built["exports"]
    assert export["registry"]["pushByDigest"] is True
    (repository,) = export["registry"]["names"]
    consumer_repo = images["consumer-image-build"].inputs["exports"][0]["registry"]["names"][0]
    assert repository != consumer_repo
    image = handler_of(pod_of(run, "orders"))["image"]
    assert image == f"{repository}@{images['orders-handler-image-build'].outputs['digest']}"
    if run.stack == "aws":
        repo = run.one("aws:ecr/repository:Repository", "orders-handler-image-repo")
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository == repo.outputs["repositoryUrl"]
    else:
        assert repository.endswith(".azurecr.io/edw-orders-handler-image")
    # A given image is used as is: nothing built for it.
    assert handler_of(pod_of(run, "ship"))["image"] == SHIP_IMAGE


# --- publish rights -----------------------------------------------------------------------------


def test_only_a_workflow_with_a_handler_may_publish_to_the_router(run: StackRun) -> None:
    if run.stack == "aws":
        topic = run.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
        key = run.one("aws:kms/key:Key", "router-key").outputs["arn"]
        for workflow, prefix in (("orders", "orders-"), ("ship", "ship-"), ("work", "")):
            policy = run.one("aws:iam/rolePolicy:RolePolicy", f"{prefix}consumer-identity-policy")
            by_sid = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
            if workflow == "work":
                assert "PublishToTheRouter" not in by_sid
                assert all(topic not in s["Resource"] for s in by_sid.values())
                continue
            assert (
                by_sid["PublishToTheRouter"]["Action"],
                by_sid["PublishToTheRouter"]["Resource"],
            ) == (
                ["sns:Publish"],
                [topic],
            )
            key_use = by_sid["UseTheRouterKeyThroughSns"]
            assert (key_use["Action"], key_use["Resource"]) == (
                ["kms:Decrypt", "kms:GenerateDataKey*"],
                [key],
            )
            assert key_use["Condition"] == {
                "StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}
            }
    else:
        topic = run.one("azure-native:eventgrid:Topic")
        senders = {
            g.name: g.inputs
            for g in run.of_type("azure-native:authorization:RoleAssignment")
            if g.inputs["roleDefinitionId"].endswith(EVENTGRID_DATA_SENDER)
        }
        assert set(senders) == {
            "orders-consumer-identity-router-sender",
            "ship-consumer-identity-router-sender",
        }
        for grant in senders.values():
            assert grant["scope"] == topic.id
            assert grant["principalType"] == "ServicePrincipal"
    # The consumer finds the router by the env the schedule's producer reads.
    router = run.outputs["routerTopicArn" if run.stack == "aws" else "routerEndpoint"]
    for workflow in ("orders", "ship"):
        assert consumer_env(pod_of(run, workflow))["EDW_ROUTER"] == router


# --- the setting --------------------------------------------------------------------------------


def parse(workflow: dict[str, Any], **values: str) -> EdwConfig:
    return EdwConfig.parse(
        {
            "cloud": "aws",
            "apiAllowedCidrs": '["198.51.100.0/24"]',
            "workflows": json.dumps([{"name": "work"}, workflow]),
            **values,
        },
        "s",
        {"aws:region": "us-east-1"},
    )


def error_of(workflow: dict[str, Any], **values: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(workflow, **values)
    return str(info.value)


def test_a_handler_setting_resolves_into_a_frozen_handler() -> None:
    cfg = parse(
        {
            "name": "orders",
            "handler": {"image": "registry.example.com:5000/team/orders:1.4.2"},
            "handlerMemoryLimit": "1Gi",
        },
        handlerCpuRequest="50m",
    )
    work, orders = cfg.workflows
    assert work.handler is None
    assert orders.handler == Handler(
        port=8080,
        cpu_request="50m",
        memory_request="128Mi",
        cpu_limit="500m",
        memory_limit="1Gi",
        image="registry.example.com:5000/team/orders:1.4.2",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        orders.handler.port = 1  # type: ignore[misc, union-attr]


@pytest.mark.parametrize(
    "image",
    [
        "orders:1.0",
        "ghcr.io/acme/orders:v1.0.0-rc.1",
        "localhost:5000/orders@sha256:" + "a" * 64,
        "[::1]:5000/team/orders:1",
        "registry.example.com/team__x/orders--y.z:1@sha256:" + "b" * 64,
    ],
)
def test_image_references_follow_the_distribution_grammar(image: str) -> None:
    assert (
        parse({"name": "orders", "handler": {"image": image}}).workflows[1].handler.image == image
    )  # type: ignore[union-attr]


HANDLER = "edw:workflows[1] (orders).handler"


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (
            {"image": "orders"},
            f"{HANDLER}.image must be an image reference pinned by tag or digest",
        ),
        ({"image": "orders:latest"}, f"{HANDLER}.image must pin a tag or digest, not :latest"),
        ({"image": "Acme/Orders:1"}, "(the repository name must be lowercase)"),
        ({"image": "acme//orders:1"}, f"{HANDLER}.image must be an image reference"),
        ({"image": "orders:-1"}, f"{HANDLER}.image must be an image reference"),
        ({"image": "orders:1 "}, f"{HANDLER}.image must be an image reference"),
        # A YAML block scalar ends in a newline; Python's `$` would accept it, Go's never does.
        ({"image": "orders:1\n"}, f"{HANDLER}.image must be an image reference"),
        ({"image": "orders@sha256:abc"}, f"{HANDLER}.image must be an image reference"),
        ({"image": "orders@md5:" + "a" * 32}, f"{HANDLER}.image must pin a sha256 digest"),
        ({"image": "o/" + "a" * 260 + ":1"}, "has a repository name longer than 255 characters"),
        ({"image": 7}, f"{HANDLER}.image must be an image reference"),
        ({"image": "orders:1", "port": 0}, f"{HANDLER}.port must be an integer 1-65535; got 0"),
        ({"image": "orders:1", "port": 65536}, f"{HANDLER}.port must be an integer 1-65535"),
        (
            {"image": "orders:1", "port": "8080"},
            f'{HANDLER}.port must be an integer 1-65535; got "8080"',
        ),
        ({"image": "orders:1", "port": 9464}, f"{HANDLER}.port must not be 9464"),
        ({"image": "orders:1", "build": "app"}, f"{HANDLER} must set exactly one of image, build"),
        ({"port": 8080}, f"{HANDLER} must set exactly one of image, build"),
        ({"image": "orders:1", "prot": 1}, "has unknown keys ['prot'] (did you mean port?)"),
        ("orders:1", f'{HANDLER} must be {{"image"'),
        ({"build": "../outside"}, f"{HANDLER}.build must be a path inside the repository"),
        ({"build": "app/../../x"}, "without '..'"),
        ({"build": "/etc"}, f"{HANDLER}.build must be a path inside the repository"),
        ({"build": "no/such/dir"}, f"{HANDLER}.build is not a directory of the repository"),
        ({"build": "docs"}, f"{HANDLER}.build has no Dockerfile"),
        ({"build": ""}, f"{HANDLER}.build must be a directory of this repository"),
    ],
)
def test_bad_handlers_name_the_workflow_and_the_field(handler: Any, expected: str) -> None:
    assert expected in error_of({"name": "orders", "handler": handler})


def test_a_build_directory_may_not_leave_the_repository_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    (root / "handler").symlink_to(outside)
    monkeypatch.setattr(config_module, "REPOSITORY_ROOT", root)
    message = error_of({"name": "orders", "handler": {"build": "handler"}})
    assert f"{HANDLER}.build leaves the repository (through a symbolic link)" in message


def test_handler_resources_are_checked_and_need_a_handler() -> None:
    message = error_of(
        {"name": "orders", "handler": {"image": "orders:1"}, "handlerMemoryLimit": "lots"}
    )
    assert "edw:workflows[1] (orders).handlerMemoryLimit must be a Kubernetes quantity" in message
    message = error_of({"name": "orders", "handlerCpuLimit": "1"})
    assert "edw:workflows[1] (orders) sets handlerCpuLimit but has no handler" in message
    message = error_of(
        {"name": "orders", "handler": {"image": "orders:1"}, "handlerCpuLimit": "50m"}
    )
    assert (
        "edw:workflows[1] (orders).handlerCpuLimit must be at least the handler's cpu request "
        "(100m); got 50m"
    ) in message
    message = error_of(
        {"name": "orders", "handler": {"image": "orders:1"}}, handlerMemoryRequest="1Gi"
    )
    assert "handlerMemoryLimit must be at least the handler's memory request (1Gi)" in message
    message = error_of({"name": "orders"}, handlerCpuRequest="fast")
    assert "edw:handlerCpuRequest must be a Kubernetes quantity" in message


def test_a_bad_handler_fails_the_program_before_any_resource_is_registered() -> None:
    bad = [{"name": "work", "handler": {"image": "orders:latest", "port": 9464}}]
    with pytest.raises(ProgramError) as info:
        run_stack("dev", {"workflows": json.dumps(bad)})
    assert isinstance(info.value.cause, ConfigError)
    assert "edw:workflows[0] (work).handler.image must pin a tag or digest" in str(info.value)
    assert "edw:workflows[0] (work).handler.port must not be 9464" in str(info.value)
    assert info.value.resources == []


def test_the_handler_port_stays_closed_to_other_pods(run: StackRun) -> None:
    """The consumer reaches its handler over loopback: the workflow's network policy opens only
    the consumer's metrics port, never the handler's (8080 for orders, 3000 for ship)."""
    policies = {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    for name in ("edw-orders-consumer", "edw-ship-consumer"):
        assert policies[name]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9464}]}]
