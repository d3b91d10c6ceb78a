"""What `make bench` and `python -m bench.handler` report: medians of one run's rounds, the
ratio of the two sides, and the Markdown table docs/app.md quotes."""

from __future__ import annotations

import bench.handler
from bench.__main__ import TABLE, Sample, compare, markdown_table, summarise


def test_the_ratio_is_of_the_medians_of_one_run() -> None:
    samples = {
        "alone": [Sample(1.0, 0.5, 1000), Sample(2.0, 0.9, 1000), Sample(1.25, 0.6, 1000)],
        "handler": [Sample(1.6, 0.8, 1000), Sample(1.25, 0.7, 1000), Sample(5.0, 3.0, 1000)],
    }
    assert compare(samples, "alone", "handler") == {
        "alone_msgs_per_s": 800.0,  # the median round: 1000 messages in 1.25 s
        "handler_msgs_per_s": 625.0,
        "ratio": 0.78,
        "alone_cpu_s_per_1000": 0.6,
        "handler_cpu_s_per_1000": 0.8,
    }


def test_both_benchmarks_print_their_rows_as_markdown() -> None:
    sides = {"ceiling": [Sample(1.0, 0.5, 800)], "consumer": [Sample(1.0, 0.25, 800)]}
    assert markdown_table([summarise("aws", 15, sides)], TABLE).splitlines() == [
        "| cloud | latency | ceiling msg/s | consumer msg/s | ratio | CPU s/1k ceiling "
        "| CPU s/1k consumer |",
        "|---|---|---|---|---|---|---|",
        "| aws | 15 ms | 800.0 | 800.0 | 1.0 | 0.625 | 0.312 |",
    ]
    hop = {"alone": [Sample(1.0, 0.5, 1000)], "handler": [Sample(1.1, 0.7, 1000)]}
    row = bench.handler.summarise("azure", hop)
    assert markdown_table([row], bench.handler.TABLE).splitlines()[-1] == (
        "| azure | 1000.0 | 909.1 | 0.91 | 0.5 | 0.7 |"
    )
