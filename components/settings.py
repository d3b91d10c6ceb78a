"""The typed settings components take, below the stack layer that parses them.

``stacks/config.py`` reads a stack's raw config, validates it and builds these objects; components
only ever see them, so the import graph runs ``__main__`` -> ``stacks`` -> ``components`` and
never back (``tests/test_layering.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.routing import EventFilter

Cloud = Literal["aws", "azure"]
# The workflow of the single-queue releases: its resources keep the names they had then, so an
# existing stack updates in place (../docs/routing.md, "Names").
DEFAULT_WORKFLOW = "work"
# The source of every scheduled event (the CronJob's producer).
SCHEDULE_SOURCE = "urn:edw:schedule"
# Seconds the pod keeps after its last batch's processing timeout to delete and exit.
DRAIN_MARGIN_SECONDS = 15


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout_seconds: int
    max_receive_count: int
    message_retention_seconds: int


@dataclass(frozen=True)
class ConsumerSettings:
    namespace: str
    image: str
    min_replicas: int
    max_replicas: int
    queue_length_target: int
    polling_interval_seconds: int
    cooldown_seconds: int
    concurrency: int
    processing_timeout_seconds: int
    simulated_work_ms: int
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    @property
    def termination_grace_seconds(self) -> int:
        """Drain time: the longest batch plus the margin to delete it and exit."""
        return self.processing_timeout_seconds + DRAIN_MARGIN_SECONDS


# The consumer's own HTTP port (health, metrics): the OpenTelemetry Prometheus exporter's
# registered port, so a handler can serve on the conventional 8080 beside it.
CONSUMER_HTTP_PORT = 9464
DEFAULT_HANDLER_PORT = 8080


@dataclass(frozen=True)
class Handler:
    """A workflow's own code, run beside its consumer and called over localhost
    (docs/handlers.md). Exactly one of ``image`` (a pinned reference, used as given) and
    ``build`` (a directory of the repository with a Dockerfile, built and pushed by `up`)."""

    port: int
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str
    image: str = ""
    build: str = ""

    @property
    def url(self) -> str:
        """Where the consumer reaches it: the pod's loopback (EDW_HANDLER_URL)."""
        return f"http://127.0.0.1:{self.port}/"


@dataclass(frozen=True)
class Workflow:
    """One queue-driven workflow: what the router sends it and how its consumer runs, with the
    stack-wide settings and the workflow's overrides already resolved."""

    name: str
    filter: EventFilter
    consumer: ConsumerSettings
    queue: QueueSettings
    mode: Literal["service", "job"] = "service"
    capacity: Literal["spot-first", "on-demand"] = "spot-first"
    schedule: str = ""  # cron, UTC: publish a scheduled event to the router ("" = none)
    handler: Handler | None = None  # None: the bundled consumer stores each event as is

    def resource_name(self, base: str) -> str:
        """Logical name of one of the workflow's resources: the default workflow keeps the
        names it had before workflows existed, every other one is prefixed by its name."""
        return base if self.name == DEFAULT_WORKFLOW else f"{self.name}-{base}"

    def scheduled_event_type(self, prefix: str) -> str:
        """The type of the event the workflow's schedule publishes."""
        return f"{prefix}.schedule.{self.name}"

    @property
    def k8s_name(self) -> str:
        """Its Deployment, ScaledObject and service account (same rule as resource_name)."""
        return "edw-consumer" if self.name == DEFAULT_WORKFLOW else f"edw-{self.name}-consumer"


@dataclass(frozen=True)
class Webhook:
    """A partner's HTTPS endpoint and the events it subscribed to."""

    name: str
    url: str
    filter: EventFilter


@dataclass(frozen=True)
class NodePoolSettings:
    families: tuple[str, ...]
    spot_cpu_limit: int
    spot_memory_limit: str
    on_demand_cpu_limit: int
    on_demand_memory_limit: str
    consolidate_after: str
    expire_after: str
    # How long a node may take to drain before Karpenter deletes what is left (e.g. "345s"):
    # the longest any consumer pod needs, plus room for the PDB to let the others go first.
    termination_grace_period: str = ""


@dataclass(frozen=True)
class AwsSettings:
    region: str
    profile: str  # aws:profile: the kubeconfig's token command uses it too ("" = default chain)
    vpc_cidr: str
    availability_zone_count: int
    existing_vpc_id: str
    existing_private_subnet_ids: tuple[str, ...]
    nat_gateway_per_az: bool
    system_instance_type: str
    ami_alias: str
    cluster_admin_arns: tuple[str, ...]
    preview_arns: tuple[str, ...]
    control_plane_log_retention_days: int
    create_spot_service_linked_role: bool
    replica_regions: tuple[str, ...] = ()


# The Entra principal types an ARM role assignment names (Microsoft.Authorization
# roleAssignments PrincipalType, less ForeignGroup and Device, which this stack never grants).
PrincipalType = Literal["User", "Group", "ServicePrincipal"]
PRINCIPAL_TYPES: tuple[PrincipalType, ...] = ("User", "Group", "ServicePrincipal")


@dataclass(frozen=True)
class Principal:
    """An Entra object and its type: a role assignment must say which (ARM refuses a
    mismatch with UnmatchedPrincipalType, and the SDK sends "User" when none is given)."""

    type: PrincipalType
    object_id: str


@dataclass(frozen=True)
class AzureSettings:
    location: str
    system_vm_size: str
    disable_local_accounts: bool
    admin_group_object_ids: tuple[str, ...]
    storage_network_default_action: Literal["Allow", "Deny"]
    cosmos_serverless: bool
    replica_locations: tuple[str, ...] = ()
    router_publishers: tuple[Principal, ...] = ()
    # Who runs `up` (each gets AKS RBAC Cluster Admin); empty: whoever runs it now.
    deployers: tuple[Principal, ...] = ()
    # Who runs previews (cluster user credentials, dry-run create/patch of our kinds).
    previewers: tuple[Principal, ...] = ()
