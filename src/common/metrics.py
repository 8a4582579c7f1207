"""What the services' Prometheus metrics share: the buckets of a histogram of seconds.

Each service defines its own metrics, on a `CollectorRegistry` of its own, in its
`metrics.py`; names, labels and help texts stay there, next to what they measure.
"""

from __future__ import annotations

# 5 ms to 10 s: a batch applied in the database or a provider request, fast or retried
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
