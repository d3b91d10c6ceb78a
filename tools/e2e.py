"""Prove a stack for real: `make e2e STACK=aws|dev` (needs the cloud's credentials).

    python -m tools.e2e --stack aws [--count 500] [--keep]

1. `up` a throw-away copy of the stack (`<stack>-e2e-<id>`, the config of `Pulumi.<stack>.yaml`)
   through Pulumi's Automation API;
2. on Azure, check that the KEDA operator runs with its workload-identity token;
3. publish N events to the work queue, wait for N rows and an empty queue, nothing dead-lettered;
4. watch the consumer Deployment scale from zero to at least one pod and back to zero;
5. `destroy` the stack (unless `--keep`), remove it, and list what is left (AWS: every resource
   the tagging API finds with the stack's tags, once the control-plane log group `destroy`
   keeps on purpose is deleted; Azure: the stack's resource groups): anything left fails the
   run.

The checks of steps 3 and 5 are tested here against the emulators and moto's tagging API
(tests/app/test_e2e_checks.py); `up`, the cluster and `destroy` need a real account.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from app import events
from app.backend import row_key
from app.settings import DEFAULT_WORKFLOW

REPO = Path(__file__).resolve().parents[1]
CONSUMER_DEPLOYMENT = "edw-consumer"


class E2EFailure(RuntimeError):  # noqa: N818 - reads as "raise E2EFailure(what failed)"
    """A check of the end-to-end run failed; the text says which and what was seen."""


class StackProbe(Protocol):
    """What the run reads and writes on a deployed stack's queue and table."""

    def send(self, bodies: Sequence[str]) -> int: ...
    def stored(self, keys: Sequence[str]) -> set[str]:
        """Which of these row keys (``app.backend.row_key``) have a row."""
        ...

    def depth(self) -> int:
        """Messages on the work queue, visible or in flight."""
        ...

    def dead_lettered(self) -> int: ...


class AwsProbe:
    def __init__(self, outputs: Mapping[str, Any]) -> None:
        import boto3  # noqa: PLC0415 - only an AWS run needs it

        from app import aws  # noqa: PLC0415

        session = boto3.session.Session(region_name=outputs["region"])
        self.sqs, self.dynamodb = session.client("sqs"), session.client("dynamodb")
        self.queue = aws.open_queue(outputs["queueUrl"], pool_size=8)
        self.queue_url, self.dlq_url = outputs["queueUrl"], outputs["deadLetterQueueUrl"]
        self.table = outputs["tableName"]

    def send(self, bodies: Sequence[str]) -> int:
        return self.queue.send(bodies)

    def stored(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 100):  # BatchGetItem reads at most 100 keys
            batch = [{"id": {"S": key}} for key in keys[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": batch, "ProjectionExpression": "id"}}
            while request:
                response = self.dynamodb.batch_get_item(RequestItems=request)
                found.update(item["id"]["S"] for item in response["Responses"].get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
        return found

    def _count(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return sum(int(attributes["Attributes"][n]) for n in names)

    def depth(self) -> int:
        return self._count(self.queue_url)

    def dead_lettered(self) -> int:
        return self._count(self.dlq_url)


class AzureProbe:
    def __init__(self, outputs: Mapping[str, Any], connection_string: str | None = None) -> None:
        from azure.data.tables import TableClient  # noqa: PLC0415 - only an Azure run needs it
        from azure.storage.queue import QueueClient  # noqa: PLC0415

        from app import azure  # noqa: PLC0415

        account, table = outputs.get("storageAccount"), outputs["tableName"]
        self.queue = azure.open_queue(outputs["queueName"], connection_string, account, 8)
        if connection_string:
            self.work = QueueClient.from_connection_string(connection_string, outputs["queueName"])
            self.poison = QueueClient.from_connection_string(
                connection_string, outputs["poisonQueueName"]
            )
            self.table = TableClient.from_connection_string(connection_string, table)
        else:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415

            credential = DefaultAzureCredential()
            url = f"https://{account}.queue.core.windows.net"
            self.work = QueueClient(url, outputs["queueName"], credential=credential)
            self.poison = QueueClient(url, outputs["poisonQueueName"], credential=credential)
            self.table = TableClient(outputs["tableEndpoint"], table, credential=credential)
        self.found: set[str] = set()  # rows seen already: a stored row stays

    def send(self, bodies: Sequence[str]) -> int:
        return self.queue.send(bodies)

    def _exists(self, key: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError  # noqa: PLC0415

        try:
            # A row's PartitionKey and RowKey are both its key (app/azure.py): a point read, one
            # call that never reads another row, however large the table has grown.
            self.table.get_entity(partition_key=key, row_key=key, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def stored(self, keys: Sequence[str]) -> set[str]:
        missing = [key for key in keys if key not in self.found]
        with ThreadPoolExecutor(max_workers=8) as pool:
            here = pool.map(self._exists, missing)
            self.found.update(key for key, found in zip(missing, here, strict=True) if found)
        return self.found & set(keys)

    def depth(self) -> int:
        return int(self.work.get_queue_properties().approximate_message_count)

    def dead_lettered(self) -> int:
        return int(self.poison.get_queue_properties().approximate_message_count)


@dataclass(frozen=True)
class Delivery:
    events: int
    seconds: float


def publish(probe: StackProbe, count: int, run_id: str) -> list[str]:
    """Send ``count`` events to the default workflow's queue; the keys of their rows."""
    ids = [f"e2e-{run_id}-{i:06d}" for i in range(count)]
    source = f"urn:edw:e2e:{run_id}"
    bodies = [
        events.make({"seq": i}, source=source, type_="edw.e2e", event_id=e)
        for i, e in enumerate(ids)
    ]
    failed = probe.send(bodies)
    if failed:
        raise E2EFailure(f"{failed} of {count} events could not be sent")
    return [row_key(DEFAULT_WORKFLOW, source, e) for e in ids]


def wait_for_delivery(
    probe: StackProbe,
    keys: Sequence[str],
    timeout: float,
    *,
    interval: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Until every event has its row and the work queue is empty; nothing may be dead-lettered."""
    started = clock()
    while True:
        missing = len(keys) - len(probe.stored(keys))
        depth, dead = probe.depth(), probe.dead_lettered()
        if dead:
            raise E2EFailure(f"{dead} messages were dead-lettered (valid events only were sent)")
        if not missing and not depth:
            return Delivery(len(keys), clock() - started)
        if clock() - started > timeout:
            raise E2EFailure(
                f"after {timeout:.0f} s: {missing} of {len(keys)} rows missing, "
                f"{depth} messages still on the work queue"
            )
        sleep(interval)


def aws_leftovers(session: Any, stack: str) -> list[str]:
    """Every resource the tagging API still finds with the stack's tags."""
    client = session.client("resourcegroupstaggingapi")
    filters = [{"Key": "project", "Values": ["edw"]}, {"Key": "stack", "Values": [stack]}]
    found: list[str] = []
    for page in client.get_paginator("get_resources").paginate(TagFilters=filters):
        found.extend(r["ResourceARN"] for r in page["ResourceTagMappingList"])
    return found


def drop_kept_log_group(session: Any, cluster: str) -> None:
    """`destroy` keeps the control-plane log group on purpose (components/aws/cluster.py: a
    second `up` of the stack adopts it); a throw-away stack has no second `up`."""
    logs = session.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
        logs.delete_log_group(logGroupName=f"/aws/eks/{cluster}/cluster")


def azure_leftovers(credential: Any, subscription: str, groups: Sequence[str]) -> list[str]:
    """The stack's resource groups (its own and AKS's node group) that still exist."""
    import requests  # noqa: PLC0415

    token = credential.get_token("https://management.azure.com/.default").token
    left = []
    for group in groups:
        url = (
            f"https://management.azure.com/subscriptions/{subscription}/resourcegroups/"
            f"{group}?api-version=2021-04-01"
        )
        status = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if status.status_code != 404:
            left.append(group)
    return left


def settle_leftovers(
    list_left: Callable[[], list[str]],
    timeout: float = 600,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Deletions (and the tagging API's index) lag: ask until nothing is left or time is up."""
    deadline = clock() + timeout
    while True:
        left = list_left()
        if not left or clock() > deadline:
            return left
        sleep(15)


class ScaleWatch:
    """Samples the consumer's replica count in the background while the run goes on."""

    def __init__(self, read_replicas: Callable[[], int], interval: float = 5.0) -> None:
        self.read = read_replicas
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.read())
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def until_zero(self, timeout: float) -> None:
        """Wait until the replicas are back to zero after having been above it, then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (
            self.samples and max(self.samples) > 0 and self.samples[-1] == 0
        ):
            time.sleep(self.interval)
        self._stop.set()
        self._thread.join(self.interval * 2)

    def verdict(self) -> str:
        """From zero, to at least one pod, back to zero; else E2EFailure naming what was seen."""
        if not self.samples or self.samples[0] != 0:
            raise E2EFailure(f"the consumer was not at zero before the run: {self.samples[:3]}")
        if max(self.samples) == 0:
            raise E2EFailure("the consumer never scaled up from zero")
        if self.samples[-1] != 0:
            raise E2EFailure(f"the consumer did not scale back to zero: {self.samples[-3:]}")
        return f"scaled 0 -> {max(self.samples)} -> 0 pods"


def stack_config(stack: str) -> dict[str, str]:
    """The stack file's config as the CLI passes it: strings as they are, the rest as JSON."""
    config = (yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()) or {})["config"]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


# The real stack's named identities (CI's `dev` and `dev-preview`). With them the throw-away
# stack would grant those and not the identity running it (`dev-e2e`), which could then not reach
# its own cluster; without them it grants whoever runs `up` (docs/ci.md, the `dev-e2e` row).
REAL_STACK_IDENTITIES = ("edw:deployerPrincipals", "edw:previewPrincipals")


def throwaway_config(stack: str) -> dict[str, str]:
    """The stack's config for its throw-away copy, which must leave nothing behind: the results
    table unprotected (Azure protects it by default), and run by its own identity."""
    config = {k: v for k, v in stack_config(stack).items() if k not in REAL_STACK_IDENTITIES}
    return {**config, "edw:deletionProtection": "false"}


def leftovers(stack: str, name: str, outputs: dict[str, Any]) -> list[str]:
    """What the throw-away stack's destroy left in the account, once it settled."""
    if stack_config(stack).get("edw:cloud") == "aws":
        import boto3  # noqa: PLC0415

        session = boto3.session.Session(region_name=stack_config(stack)["aws:region"])
        if outputs.get("clusterName"):
            drop_kept_log_group(session, outputs["clusterName"])
        return settle_leftovers(lambda: aws_leftovers(session, name))
    from components.azure.login import provider_login  # noqa: PLC0415

    credential = provider_login(os.environ).credential()
    subscription = outputs.get("subscriptionId", "")
    groups = [g for g in (outputs.get("resourceGroup"), outputs.get("nodeResourceGroup")) if g]
    return settle_leftovers(lambda: azure_leftovers(credential, subscription, groups))


def run(stack: str, count: int, keep: bool) -> int:
    from kubernetes import client as k8s  # noqa: PLC0415
    from kubernetes import config as k8s_config  # noqa: PLC0415
    from pulumi import automation as auto  # noqa: PLC0415

    run_id = uuid.uuid4().hex[:6]
    name = f"{stack}-e2e-{run_id}"
    workspace = auto.create_or_select_stack(stack_name=name, work_dir=str(REPO))
    config = throwaway_config(stack)
    workspace.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
    outputs: dict[str, Any] = {}
    try:
        print(f"e2e: up {name}", flush=True)
        result = workspace.up(on_output=print)
        outputs = {k: v.value for k, v in result.outputs.items()}
        kubeconfig = yaml.safe_load(outputs["kubeconfig"])
        k8s_config.load_kube_config_from_dict(kubeconfig)
        if outputs["cloud"] == "azure":
            from components.azure.keda_token import has_token, is_ready  # noqa: PLC0415

            core = k8s.CoreV1Api()
            pods = core.list_namespaced_pod("kube-system", label_selector="app=keda-operator")
            docs = [k8s.ApiClient().sanitize_for_serialization(p) for p in pods.items]
            if not docs or not all(has_token(p) and is_ready(p) for p in docs):
                raise E2EFailure("the KEDA operator runs without its workload-identity token")
        probe: StackProbe = AwsProbe(outputs) if outputs["cloud"] == "aws" else AzureProbe(outputs)
        apps, namespace = k8s.AppsV1Api(), outputs["consumerNamespace"]
        watch = ScaleWatch(
            lambda: (
                apps.read_namespaced_deployment(CONSUMER_DEPLOYMENT, namespace).spec.replicas or 0
            )
        )
        watch.start()
        keys = publish(probe, count, run_id)
        delivery = wait_for_delivery(probe, keys, timeout=1800)
        print(f"e2e: {delivery.events} rows in {delivery.seconds:.0f} s", flush=True)
        watch.until_zero(timeout=900)
        print(f"e2e: {watch.verdict()}", flush=True)
    finally:
        if not keep:
            workspace.destroy(on_output=print)
            workspace.workspace.remove_stack(name)
    if keep:
        return 0
    left = leftovers(stack, name, outputs)
    if left:
        raise E2EFailure(f"destroy left {len(left)} resources behind: {left}")
    print("e2e: destroy left nothing behind", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.e2e", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack whose config to prove: aws, dev")
    parser.add_argument("--count", type=int, default=500, help="events to publish")
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    args = parser.parse_args(argv)
    try:
        return run(args.stack, args.count, args.keep)
    except E2EFailure as failure:
        print(f"e2e failed: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
