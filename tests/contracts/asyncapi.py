"""docs/asyncapi.yaml as a consumer applies it: a Kafka record read with the CloudEvents SDK's
Kafka binding (binary content mode), its headers, key and data validated against the
message of its channel with jsonschema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from cloudevents.core.exceptions import BaseCloudEventException
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from common.kafka import ConsumedRecord

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
# the document's name in the schema registry, so that its own `#/...` references resolve
URI = "urn:allim:asyncapi"


@dataclass(frozen=True)
class Event:
    """A record that passed: what its CloudEvent says."""

    topic: str
    id: str
    type: str
    key: str
    data: dict[str, Any]
    # type, source, subject and data as canonical JSON: what publishing the same event
    # again repeats, and two different events do not share
    fact: bytes


@dataclass(frozen=True)
class Checked:
    """What checking one record found: its event, if it passed, and what is wrong."""

    event: Event | None
    problems: list[str]


class Contract:
    """The AsyncAPI document: its channels by topic, and validators of their messages."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._registry: Registry[Any] = Registry().with_resource(
            URI, DRAFT7.create_resource(document)
        )

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> Contract:
        """The contract as `path` (docs/asyncapi.yaml) states it."""
        return cls(yaml.safe_load(path.read_text()))

    def at(self, pointer: str) -> Any:
        """The part of the document at a JSON pointer (`/components/messages/Tap`)."""
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            name = part.replace("~1", "/").replace("~0", "~")
            node = node[int(name)] if isinstance(node, list) else node[name]
        return node

    def channel(self, topic: str) -> dict[str, Any]:
        """The channel whose address is `topic`."""
        found = [c for c in self.document["channels"].values() if c["address"] == topic]
        if len(found) != 1:
            raise AssertionError(f"asyncapi.yaml has {len(found)} channels for topic '{topic}'.")
        channel: dict[str, Any] = found[0]
        return channel

    def messages(self, topic: str) -> list[str]:
        """The pointers of the messages of the topic's channel."""
        return [m["$ref"].removeprefix("#") for m in self.channel(topic)["messages"].values()]

    def key(self, message: str) -> str:
        """The pointer of the Kafka key schema of a message (its bindings may be a $ref)."""
        bindings = self.at(f"{message}/bindings")
        where = bindings["$ref"].removeprefix("#") if "$ref" in bindings else f"{message}/bindings"
        return f"{where}/kafka/key"

    def problems(self, pointer: str, instance: Any) -> list[str]:
        """How `instance` breaks the schema at `pointer`; empty when it is valid."""
        validator = Draft7Validator(
            {"$ref": f"{URI}#{pointer}"},
            registry=self._registry,
            format_checker=Draft7Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(whole)'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def check_event(self, record: ConsumedRecord) -> Checked:
        """Read a record of an event topic as a CloudEvent and validate it."""
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        headers = dict(record.headers)
        try:
            event = from_binary_event(KafkaMessage(headers, record.key, record.value or b""))
        except (BaseCloudEventException, ValueError) as exc:
            return Checked(None, [f"{where}: the CloudEvents SDK refuses it: {exc}"])
        texts = {name: value.decode() for name, value in headers.items()}
        candidates = self.messages(record.topic)
        matching = [m for m in candidates if not self.problems(f"{m}/headers", texts)]
        if len(matching) != 1:
            why = {m: self.problems(f"{m}/headers", texts) for m in candidates}
            return Checked(None, [f"{where}: headers {texts} match {matching}: {why}"])
        message = matching[0]
        data = event.get_data()
        key = record.key.decode() if record.key is not None else None
        problems = [f"{where} data {p}" for p in self.problems(f"{message}/payload", data)]
        if isinstance(data, dict):
            # consumers must tolerate new fields, so the schemas allow them; allim's own
            # records carry none that the document does not describe
            documented = self.at(f"{message}/payload/properties")
            problems += [f"{where} data: '{f}' is not documented" for f in data.keys() - documented]
        problems += [f"{where} key {p}" for p in self.problems(self.key(message), key)]
        if not isinstance(data, dict) or key is None:
            return Checked(None, problems or [f"{where}: no data object or no key"])
        if key != data.get("alert_id"):
            problems.append(f"{where}: key {key} is not the alert id {data.get('alert_id')}")
        subject = event.get_subject()
        if subject is not None and subject != key:
            problems.append(f"{where}: subject {subject} is not the key {key}")
        fact = orjson.dumps(
            {
                "type": event.get_type(),
                "source": event.get_source(),
                "subject": subject,
                "data": data,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        found = Event(record.topic, event.get_id(), event.get_type(), key, data, fact)
        return Checked(found if not problems else None, problems)

    def check_dead_letter(self, record: ConsumedRecord) -> list[str]:
        """What is wrong with a record of the dead-letter channel; empty when nothing."""
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        [message] = self.messages(record.topic)
        texts = {name: value.decode() for name, value in record.headers}
        key = record.key.decode() if record.key is not None else None
        problems = [f"{where} headers {p}" for p in self.problems(f"{message}/headers", texts)]
        if key is not None:
            problems += [f"{where} key {p}" for p in self.problems(self.key(message), key)]
        return problems
