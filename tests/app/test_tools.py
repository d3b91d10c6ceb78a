"""The demo, the steady moto it runs on and the load test's sampling (emulators and a fake
Kubernetes API on loopback)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from botocore.exceptions import ClientError
from kubernetes import client as k8s

from app.backend import open_queue
from app.observability import LATENCY_BUCKETS
from bench.emulators import AWS_TEST_ENV, AZURITE, REPO, MotoEmulator, Target, child_env
from stacks.config import SETTINGS_BY_KEY
from tests.app.conftest import wait_until
from tests.http_replies import reply
from tests.tools import need, node_package
from tools import demo, loadtest

RECORDED = Path(__file__).with_name("recorded")


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_the_demo_runs_end_to_end_and_draws_the_run(cloud: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tools.demo", "--cloud", cloud, "--count", "400"),
            *("--consumers", "2", "--timeout", "120"),
        ],
        cwd=tmp_path,  # the plot lands here, one file per cloud
        env=child_env({}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert [s[:5] for s in steps] == [f"[{i}/6]" for i in range(1, 7)]  # nothing silent
    summary = lines[-1]
    assert summary.startswith("OK: 400 rows for 400 events in ")
    assert re.search(
        r"0 left on the queue, 0 dead-lettered; consumers: up to [12]; latency ", summary
    )
    assert re.search(r"p95 [\d.]+s \(in the [\d.]+-[\d.]+s bucket\); plot: demo-", summary)
    # No terminal here: the plain lines, not a live table. The first is taken before any
    # consumer ran: the burst has backed the queue up.
    first = dict(
        cell.split("=", 1) for cell in next(ln for ln in lines if ln.startswith("t=")).split()
    )
    assert (first["stored"], first["progress"]) == ("0", "0%")
    assert int(first["depth"]) > 0
    assert (tmp_path / f"demo-{cloud}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_summary_gives_the_whole_runs_latency_not_the_last_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The last second was quick (p95 0.1 s); over the whole run 95 of 100 took up to 2.5 s.
    last = demo.Sample(10.0, 100, 100, 0, 0, 0, 2, 50.0, 0.08, 0.1)
    whole = demo.Histogram({0.5: 20, 1.0: 50, 2.5: 100, float("inf"): 100}, total=110.0)
    running = demo.Running(
        target=None,  # type: ignore[arg-type]
        fleet=None,  # type: ignore[arg-type]
        producer=threading.Thread(target=lambda: None),
        producer_run=demo.Run(100, 10),
        sent_at=4.0,
    )
    final = demo.ConsumerStats(processed=100, latency=whole)
    result = demo.Result([last], running, 100, final, [str(i) for i in range(100)], 0, 0)
    args = argparse.Namespace(count=100, cloud="aws", pattern="burst")
    assert demo._finished(args, result, demo.Steps(1), tmp_path / "plot.png") == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    p95 = whole.quantile(0.95)
    assert f"latency mean 1.10s, p95 {p95:.2f}s (in the 1-2.5s bucket)" in summary
    assert "in 10s (10 rows/s); drained 6s after the last send" in summary


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` (pid -> command line), from `ps` (Linux and macOS)."""
    out = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,args="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        pid, ppid, *args = line.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), args[0] if args else ""))
    found, todo = {}, [root]
    while todo:
        for pid, args in children.get(todo.pop(), []):
            found[pid] = args
            todo.append(pid)
    return found


def listening(pids: set[int]) -> set[str]:
    """The local addresses of the TCP sockets these processes listen on (Linux /proc)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if (link := os.readlink(fd)).startswith("socket:["):
                        inodes.add(link[8:-1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
                found.add(socket.inet_ntop(family, b"".join(words)))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("cloud", "presses"), [("aws", 1), ("aws", 2), ("azure", 2)])
def test_ctrl_c_stops_everything_with_one_line_and_leaves_nothing_running(
    cloud: str, presses: int, tmp_path: Path
) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group. Two quick
    presses must not leave anything behind either: the second used to kill the emulator under
    the producer and the queue reads (on Azure the SDK's retries then held the exit for
    minutes; on AWS, "send failed" lines)."""
    if cloud == "azure":
        node_package("Azurite", "azurite")
    emulator = "steady_moto" if cloud == "aws" else "azurite"
    demo_ = subprocess.Popen(
        [
            *(sys.executable, "-m", "tools.demo", "--cloud", cloud, "--count", "1000000"),
            *("--rate", "300", "--consumers", "2", "--timeout", "120"),
        ],
        cwd=tmp_path,
        env=child_env({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    try:
        deadline = time.monotonic() + 90
        children: dict[int, str] = {}
        # Wait for the emulator and both consumers (the scale-out takes a few seconds).
        while sum("app.consumer" in a for a in children.values()) < 2:
            assert time.monotonic() < deadline, "the demo never started two consumers"
            assert demo_.poll() is None, demo_.communicate()
            time.sleep(0.2)
            children = descendants(demo_.pid)
        assert any(emulator in a for a in children.values())
        if sys.platform == "linux":  # the emulator's and the consumers' servers: loopback only
            wait_until(lambda: len(listening(set(children))) > 0, 30, "servers listening")
            time.sleep(1)  # the second consumer binds its port a moment after it starts
            assert listening(set(children)) == {"127.0.0.1"}
        for _ in range(presses):
            os.killpg(demo_.pid, signal.SIGINT)
            time.sleep(0.01)
        out, err = demo_.communicate(timeout=60)
    finally:
        if demo_.poll() is None:
            os.killpg(demo_.pid, signal.SIGKILL)
    assert demo_.returncode == 128 + signal.SIGINT, out + err
    summary = [line for line in out.splitlines() if line.startswith("STOPPED")]
    assert len(summary) == 1
    assert out.strip().splitlines()[-1] == summary[0]
    assert summary[0].startswith("STOPPED by Ctrl-C after ")
    assert "of 1000000 events sent" in summary[0]
    assert err == ""  # no traceback, no "send failed", no "cannot schedule new futures"
    left = {pid: args for pid, args in children.items() if alive(pid)}
    assert left == {}, f"still running after Ctrl-C: {left}"


# Two presses while the demo still imports its packages, before any handler of its own could be
# there: they land in the import of rich.console, its first third-party import.
PRESSED_WHILE_IMPORTING = """
import builtins, os, runpy, signal, sys
real = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "rich.console":
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = importing
sys.argv = ["tools.demo", "--count", "100"]
runpy.run_module("tools.demo", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_the_demo_imports_stops_it_with_one_line_and_starts_nothing(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PRESSED_WHILE_IMPORTING],
        cwd=tmp_path,
        env=child_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 128 + signal.SIGINT, result.stdout + result.stderr
    assert result.stderr == ""  # no KeyboardInterrupt traceback
    assert result.stdout.splitlines() == [
        "STOPPED by Ctrl-C after 0s: 0 of 100 events sent, 0 stored, 0 left on the queue; the "
        "consumers and the emulator are stopped, no plot"
    ]  # no step: no emulator was started


def test_the_plot_shows_sent_and_stored_against_the_total_and_marks_the_drain() -> None:
    samples = [
        demo.Sample(1.0, 500, 0, 500, 0, 0, 1, 0.0, None, None),
        demo.Sample(2.0, 1000, 200, 700, 100, 0, 2, 200.0, 0.8, 2.1),
        demo.Sample(3.0, 1000, 700, 250, 50, 0, 2, 500.0, 1.1, 2.4),
        demo.Sample(4.0, 1000, 1000, 0, 0, 0, 2, 300.0, 0.6, 0.9),
    ]
    figure = demo.draw(samples, demo.Marks(1000, 2.1, 4.0), "aws", LATENCY_BUCKETS)
    try:
        events, queue, latency, fleet, rate = figure.axes
        lines = {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}

        def series(label: str) -> list[float]:
            return [float(v) for v in lines[label].get_ydata()]

        assert series("sent (cumulative)") == [500, 1000, 1000, 1000]
        assert series("stored (cumulative)") == [0, 200, 700, 1000]
        assert series("all 1000 events") == [1000, 1000]
        assert series("queue depth (waiting)") == [500, 700, 250, 0]
        assert series("in flight") == [0, 100, 50, 0]
        assert series("consumers (right axis)") == [1, 2, 2, 2]
        assert series("rows/s (right axis)") == [0, 200, 500, 300]
        assert list(lines["mean (exact)"].get_ydata()) == [None, 0.8, 1.1, 0.6]  # none yet: a gap
        # The right axes carry what the legend says is on the right.
        assert lines["consumers (right axis)"].axes is fleet
        assert lines["rows/s (right axis)"].axes is rate
        assert (fleet.get_ylabel(), rate.get_ylabel()) == ("consumers", "rows stored per second")
        assert [float(x) for x in lines["queue drained"].get_xdata()] == [4.0, 4.0]
        assert [float(x) for x in lines["last event sent"].get_xdata()] == [2.1, 2.1]
        # Each panel's legend names its series; the marks are named once, on top.
        legend = {ax: [t.get_text() for t in ax.get_legend().get_texts()] for ax in (events, queue)}
        assert "consumers (right axis)" in legend[events]
        assert "queue drained" in legend[events]
        assert legend[queue] == ["queue depth (waiting)", "in flight", "rows/s (right axis)"]
        # The p95's resolution is shown: the log axis' ticks are the histogram's bucket bounds.
        assert latency.get_yscale() == "log"
        assert [float(t) for t in latency.get_yticks()] == [0.5, 1.0, 2.5]
    finally:
        from matplotlib import pyplot

        pyplot.close(figure)


@pytest.mark.parametrize(
    ("backlog", "running", "wanted"),
    [
        (0, 0, 0),  # nothing waits: nothing starts
        (5, 0, 1),  # anything waiting starts one (KEDA's activation)
        (1000, 1, 2),  # one more per step, not all at once
        (1000, 3, 3),  # never more than --consumers
        (30, 1, 2),  # ceil(30 / 20)
        (20, 1, 1),  # exactly the target per consumer
        (10, 3, 3),  # no scale-in while the run goes on
    ],
)
def test_the_demo_scales_out_like_keda_one_step_at_a_time(
    backlog: int, running: int, wanted: int
) -> None:
    assert demo.wanted(backlog, running, most=3) == wanted


def test_the_scaler_aims_at_the_stacks_default_messages_per_pod() -> None:
    assert SETTINGS_BY_KEY["queueLengthTarget"].default == demo.PER_CONSUMER


def test_histogram_quantiles_follow_prometheus() -> None:
    h = demo.Histogram({0.1: 10, 0.5: 60, 1.0: 100, float("inf"): 100}, total=42.0)
    assert h.quantile(0.5) == pytest.approx(0.1 + 0.4 * (40 / 50))
    assert h.quantile(0.95) == pytest.approx(0.5 + 0.5 * (35 / 40))
    assert h.bucket(0.95) == (0.5, 1.0)
    assert h.mean() == pytest.approx(0.42)
    assert demo.Histogram({float("inf"): 0}).quantile(0.5) is None
    later = demo.Histogram({0.1: 15, 0.5: 60, 1.0: 110, float("inf"): 110}, total=50.0)
    since = later.minus(h)
    assert since.buckets[0.1] == 5
    assert since.mean() == pytest.approx(8.0 / 10)


def test_consumer_metrics_add_up() -> None:
    text = (
        'edw_messages_processed_total{cloud="aws"} 7.0\n'
        'edw_messages_in_flight{cloud="aws"} 3.0\n'
        'edw_end_to_end_seconds_bucket{cloud="aws",le="1.0"} 5.0\n'
        'edw_end_to_end_seconds_bucket{cloud="aws",le="+Inf"} 7.0\n'
        'edw_end_to_end_seconds_sum{cloud="aws"} 3.5\n'
    )
    stats = demo.ConsumerStats()
    stats.add(text)
    stats.add(text)
    assert (stats.processed, stats.in_flight) == (14, 6)
    assert stats.latency.buckets == {1.0: 10, float("inf"): 14}
    assert stats.latency.mean() == pytest.approx(0.5)


@pytest.mark.parametrize("action", ["receive", "send"])
def test_steady_moto_receives_and_sends_at_the_same_cost_at_any_depth(action: str) -> None:
    """Measured in one process, unpatched then patched: a receive or a send of 10 at depth 500
    costs a multiple of depth 10 with moto (x30 here), about the same with the patch."""
    script = (
        "from tools import steady_moto as s\n"
        f"a, b = s.seconds({action!r}, 10), s.seconds({action!r}, 500)\n"
        "s.patch()\n"
        f"c, d = s.seconds({action!r}, 10), s.seconds({action!r}, 500)\n"
        "print(b / a, d / c)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    moto_ratio, steady_ratio = map(float, out.stdout.split())
    print(f"deep/shallow {action}: moto x{moto_ratio:.1f}, steady x{steady_ratio:.1f}")
    assert moto_ratio > 10
    assert steady_ratio < 3


def test_steady_moto_returns_what_moto_returns() -> None:
    script = (
        "from moto.core import DEFAULT_ACCOUNT_ID\n"
        "from moto.sqs.models import sqs_backends\n"
        "from tools import steady_moto\n"
        "steady_moto.patch()\n"
        "b = sqs_backends[DEFAULT_ACCOUNT_ID]['us-east-1']\n"
        "q = b.create_queue('q')\n"
        "for i in range(30): b.send_message('q', str(i))\n"
        "first = b.receive_message('q', 10, 0, 30)\n"
        "second = b.receive_message('q', 10, 0, 30)\n"
        "print([m.body for m in first + second], len(q.messages), bool(q.messages))\n"
        # Outside a send the counts are all there; inside one, FIFO deduplication still works.
        "a = q.attributes\n"
        "print(a['ApproximateNumberOfMessages'], a['ApproximateNumberOfMessagesNotVisible'])\n"
        "f = b.create_queue('f.fifo', FifoQueue='true', ContentBasedDeduplication='true')\n"
        "for _ in range(2): b.send_message('f.fifo', 'same', group_id='g')\n"
        "print(len(f._messages))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    received, counts, fifo = out.stdout.splitlines()
    bodies, visible, nonempty = received.rsplit(" ", 2)
    assert json.loads(bodies.replace("'", '"')) == [str(i) for i in range(20)]  # in order
    assert (int(visible), nonempty.strip()) == (10, "True")
    assert counts.split() == ["10", "20"]
    assert fifo == "1"


RACING_DELETES = """
import sys, threading, time
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, sqs_backends
from bench.emulators import lock_sqs_deletes
if sys.argv[1] == "locked":
    lock_sqs_deletes()
b = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
q = b.create_queue("q")
for i in range(3):
    b.send_message("q", str(i))
b.receive_message("q", 10, 0, 300)
first, second = q._messages[0].receipt_handle, q._messages[1].receipt_handle
# Hold the first delete just as it starts rebuilding the queue's list (its second look at a
# message: the first was the existence check) until the second delete is done, or for 1 s: with
# the lock, the second delete waits for the first instead.
second_done, paused, looks = threading.Event(), threading.Event(), []
original = Message.had_receipt_handle
def looking(self, handle):
    if threading.current_thread().name == "first":
        looks.append(handle)
        if len(looks) == 2:
            paused.set()
            second_done.wait(timeout=1)
    return original(self, handle)
Message.had_receipt_handle = looking
def delete_second():
    b.delete_message("q", second)
    second_done.set()
one = threading.Thread(target=b.delete_message, args=("q", first), name="first")
one.start()
paused.wait()
two = threading.Thread(target=delete_second)
two.start()
one.join()
two.join()
print(len(q._messages))
"""


@pytest.mark.parametrize(("mode", "left"), [("unlocked", 2), ("locked", 1)])
def test_concurrent_sqs_deletes_delete_every_message_once_locked(mode: str, left: int) -> None:
    """Two deletes at once, interleaved on purpose: unlocked, moto's rebuild of the list brings
    the second message back (when this fails, moto fixed it: drop the lock); locked, only the
    message nobody deleted is left."""
    out = subprocess.run(
        [sys.executable, "-c", RACING_DELETES, mode],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(out.stdout) == left


RACING_RECEIVES = """
import sys, threading
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, sqs_backends
from bench.emulators import lock_sqs_receives
if sys.argv[1] == "locked":
    lock_sqs_receives()
b = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
b.create_queue("q")
b.send_message("q", "only")
# Hold the first receive as it marks the message received (it has seen it visible) until the
# second receive has returned, or for 1 s: with the lock, the second waits for the first instead.
second_done, paused, got = threading.Event(), threading.Event(), []
original = Message.mark_received
def marking(self, visibility_timeout=None):
    if threading.current_thread().name == "first":
        paused.set()
        second_done.wait(timeout=1)
    return original(self, visibility_timeout=visibility_timeout)
Message.mark_received = marking
def second():
    got.extend(b.receive_message("q", 10, 0, 300))
    second_done.set()
one = threading.Thread(target=lambda: got.extend(b.receive_message("q", 10, 0, 300)), name="first")
one.start()
paused.wait()
two = threading.Thread(target=second)
two.start()
one.join()
two.join()
print(len(got))
"""


@pytest.mark.parametrize(("mode", "deliveries"), [("unlocked", 2), ("locked", 1)])
def test_concurrent_sqs_receives_deliver_a_message_once_locked(mode: str, deliveries: int) -> None:
    """Two receives at once, interleaved on purpose: unlocked, both take the one message (what
    made the [aws] visibility-extension test see 9 deliveries of 8 under load; when this fails,
    moto fixed it: drop the lock); locked, only the first does."""
    out = subprocess.run(
        [sys.executable, "-c", RACING_RECEIVES, mode],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(out.stdout) == deliveries


def test_moto_counts_message_attributes_toward_the_size_limit_like_sqs(moto: MotoEmulator) -> None:
    sqs = moto.client("sqs")
    url = sqs.create_queue(
        QueueName=f"size-{uuid.uuid4().hex[:8]}", Attributes={"MaximumMessageSize": "1024"}
    )["QueueUrl"]
    attribute = {"reason": {"DataType": "String", "StringValue": "r"}}  # 6 + 6 + 1 bytes
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1011, MessageAttributes=attribute)
    with pytest.raises(ClientError, match="Message must be shorter than 1024 bytes"):
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1012, MessageAttributes=attribute)
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)


def test_the_load_test_samples_the_queues(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    target.send([f'{{"n": {i}}}' for i in range(30)])
    if target.cloud == "aws":
        for key, value in {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": target.env["AWS_ENDPOINT_URL"],
        }.items():
            monkeypatch.setenv(key, value)
        queues = loadtest.AwsQueues(
            {
                "region": "us-east-1",
                "queueUrl": target.env["EDW_QUEUE"],
                "deadLetterQueueUrl": target.env["EDW_DEAD_LETTER_QUEUE"],
            }
        )
        target.sqs.receive_message(QueueUrl=target.env["EDW_QUEUE"], MaxNumberOfMessages=10)  # type: ignore[attr-defined]
        assert queues.sample() == loadtest.QueueSample(depth=20, in_flight=10, dead=0)
    else:
        queues = loadtest.AzureQueues(
            {
                "queueName": target.env["EDW_QUEUE"],
                "poisonQueueName": target.env["EDW_DEAD_LETTER_QUEUE"],
            },
            target.env["EDW_AZURE_CONNECTION_STRING"],
        )
        assert queues.sample() == loadtest.QueueSample(depth=30, in_flight=None, dead=0)


class RecordedApi:
    """Answers the three reads the load test makes with recorded API responses."""

    ROUTES: ClassVar[dict[str, str]] = {
        "/apis/apps/v1/namespaces/edw/deployments/edw-consumer": "deployment.json",
        "/apis/autoscaling/v2/namespaces/edw/horizontalpodautoscalers": "hpas.json",
        "/apis/karpenter.sh/v1/nodeclaims": "nodeclaims.json",
    }

    def __init__(self) -> None:
        self.paths: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                api.paths.append(path)
                name = api.ROUTES.get(path)
                reply(self, 200 if name else 404, (RECORDED / name).read_bytes() if name else {})

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


def test_the_load_test_reads_pods_and_nodes_through_the_kubernetes_client() -> None:
    api = RecordedApi()
    configuration = k8s.Configuration(host=api.url)
    cluster = loadtest.Cluster(k8s.ApiClient(configuration), "edw")
    assert cluster.sample() == loadtest.ClusterSample(
        replicas=4, desired=6, spot_nodes=2, on_demand_nodes=1
    )
    assert sorted(api.paths) == sorted(RecordedApi.ROUTES)


def sample(t: float, sent: int, pods: int, spot: int) -> loadtest.Sample:
    return loadtest.Sample(
        t, sent, loadtest.QueueSample(0, 0, 0), loadtest.ClusterSample(pods, None, spot, 1)
    )


def test_the_milestones_of_a_scale_out_and_in() -> None:
    samples = [
        sample(0, 0, 0, 0),
        sample(5, 100, 0, 0),
        sample(10, 400, 2, 0),
        sample(40, 900, 6, 2),
        sample(60, 1000, 3, 2),
        sample(130, 1000, 0, 1),
    ]
    assert loadtest.milestones(samples, sending_done=60) == {
        "first_message_to_first_pod": 5.0,
        "first_message_to_first_new_node": 35.0,
        "last_message_to_zero_pods": 70.0,
    }
    assert loadtest.milestones(samples[:3], None)["last_message_to_zero_pods"] is None


def test_a_queue_on_its_own_is_reached_in_the_region_its_url_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # the operator's laptop, in the lost region
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    queue = open_queue("aws", "https://sqs.us-west-2.amazonaws.com/123456789012/work")
    assert queue.client.meta.region_name == "us-west-2"  # type: ignore[attr-defined]


def azure_demo_on(tmp_path: Path, node_script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The Azure demo run with a stand-in ``node`` (this shell script) first on PATH."""
    need("Azurite", AZURITE if AZURITE.exists() else None)
    fake = tmp_path / "bin"
    fake.mkdir()
    node = fake / "node"
    node.write_text(node_script)
    node.chmod(0o755)
    return subprocess.run(
        [sys.executable, "-m", "tools.demo", "--cloud", "azure", "--count", "10", *args],
        cwd=tmp_path,
        env=child_env({"PATH": f"{fake}:{os.environ['PATH']}"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_azure_demo_on_a_node_too_old_says_which_node_and_how_to_get_22(
    tmp_path: Path,
) -> None:
    """Azurite 3.37 declares Node.js >=22.0.0; a node that fails it gets its output shown and
    the advice, not a traceback."""
    result = azure_demo_on(
        tmp_path, "#!/bin/sh\necho v20.11.1\necho 'SyntaxError: from the fake node' >&2\nexit 1\n"
    )
    assert result.returncode == demo.EXIT_MISSING, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["[1/6] starting Azurite (Queue + Table) on 127.0.0.1"]
    assert result.stderr.splitlines() == [
        "Azurite exited while starting (exit 1): v20.11.1",
        "SyntaxError: from the fake node",  # Azurite's stderr, kept for this
        "Azurite 3.37.0 needs Node.js >=22.0.0 (the engines of its package.json) and node is "
        "v20.11.1. Install Node.js 22 or newer: https://nodejs.org/en/download, or nvm "
        "(https://github.com/nvm-sh/nvm: nvm install 22), or Homebrew (brew install node); then "
        "run `make demo CLOUD=azure` again. `make demo` (AWS) needs no Node.js.",
    ]


def test_the_azure_demo_stops_an_azurite_that_hangs_and_says_what_ran_and_what_to_try(
    tmp_path: Path,
) -> None:
    """A node that starts Azurite, prints a line on each stream and then hangs: the demo waits
    --start-timeout, not forever, stops it, and names the command, the port and what to try,
    with what it printed."""
    pid = tmp_path / "node.pid"
    started = time.monotonic()
    result = azure_demo_on(
        tmp_path,
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo v22.11.0; exit 0; fi\n'
        f"echo $$ > {pid}\n"
        "echo 'Azurite Blob service is starting at http://127.0.0.1:0'\n"
        "echo 'a warning from the fake node' >&2\n"
        "exec sleep 600\n",
        "--start-timeout",
        "2",
    )
    assert time.monotonic() - started < 30
    assert result.returncode == demo.EXIT_MISSING, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["[1/6] starting Azurite (Queue + Table) on 127.0.0.1"]
    err = result.stderr
    assert err.startswith(
        "Azurite did not report its blob, queue, table services listening within 2 s, so it "
        "was stopped.\n"
    ), err
    assert "  command: node --require " in err
    assert "azurite.js --disableTelemetry" in err
    assert "--queuePort 0" in err
    assert "  port: 0 on 127.0.0.1 for each service" in err
    assert "listening so far: none" in err
    assert "  try: run the command by hand" in err
    assert "--start-timeout" in err
    assert "Azurite Blob service is starting at http://127.0.0.1:0\n" in err
    assert "a warning from the fake node\n" in err
    assert "node is v22.11.0, which Azurite" in err  # the node advice follows
    with pytest.raises(ProcessLookupError):  # stopped, not left behind
        os.kill(int(pid.read_text()), 0)


def test_azurites_node_engine_is_read_from_the_lock_as_its_package_declares_it() -> None:
    locked = json.loads((REPO / "package-lock.json").read_text())["packages"]
    assert locked["node_modules/azurite"]["engines"]["node"] == ">=22.0.0"
    installed = REPO / "node_modules" / "azurite" / "package.json"
    if installed.exists():  # the package itself, where npm installed it
        assert json.loads(installed.read_text())["engines"]["node"] == ">=22.0.0"
    node_min = re.search(r"^NODE_MIN := (\d+)$", (REPO / "Makefile").read_text(), re.M)
    assert node_min
    assert node_min.group(1) == "22"  # the Makefile's messages say the same
