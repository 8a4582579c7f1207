"""What the services' Prometheus metrics share: histogram buckets, and labelled series
created at start-up.

Each service defines its own metrics, on a `CollectorRegistry` of its own, in its
`metrics.py`; names, labels and help texts stay there, next to what they measure.

A labelled counter has no series until its first increment, so that series appears
already holding its value and `rate()` or `increase()` never see the step: after a restart
the first dead letter, or the first broadcast of a category, would be missing from alerts
and panels. Every label combination known in advance is therefore created at zero when
the metrics are built (`initialise`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Gauge

from common.messages import Category, Channel

# 5 ms to 10 s: a batch applied in the database or a provider request, fast or retried
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CATEGORIES: tuple[str, ...] = get_args(Category)
CHANNELS: tuple[str, ...] = get_args(Channel)


def initialise(metric: Counter | Gauge, *values: Iterable[str]) -> None:
    """Create `metric`'s series at zero for every combination of `values`, one set a label."""
    for combination in itertools.product(*values):
        metric.labels(*combination)
