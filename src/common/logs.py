"""Logging set-up: plain text in development, one JSON object a line in production."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

# Keys that callers pass through `extra=` and that belong in the structured record.
CONTEXT_KEYS = ("alert_id", "batch_id", "shard", "subscriber_id", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its context keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, json_lines: bool) -> None:
    """Send every logger to stderr at `level`, as JSON lines when asked."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR; the services log what matters themselves.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
