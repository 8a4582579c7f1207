"""OASIS CAP 1.2 intake: parse a CAP alert safely and map it onto an allim alert.

Parsing goes through defusedxml with DTDs forbidden, so entity expansion (XML bombs) and
external entities never run: they are `CapUnsafe`, like malformed XML (HTTP 400).
A well-formed document that is not a valid CAP 1.2 alert is `CapInvalid`, naming the
element at fault (HTTP 422).

Mapping, from the first `info` in Korean (`language` ko*), else the first `info`:
- title: `headline`, else `event` (cut to 50 characters); body: `description` and
  `instruction` (cut to 1,300 characters); button: `web`, when an http(s) link;
- category: `emergency` when urgency is Immediate/Expected and severity Extreme/Severe,
  else `public`; send_at: `effective`; expires_at: `expires`;
- audience: each `area` maps to a district through the area table (a geocode
  `valueName=value` first, else its `areaDesc`); a district `*` means everyone; no area
  at all means everyone. An area the table does not know is refused.
- status Test/Exercise/System/Draft, or a scope other than Public: stored, not broadcast.
- msgType Cancel: cancels the alerts named in `references`; Update: a new alert, linked to
  the referenced alert allim holds as its `update` (once that one has ended, a follow-up to
  those it reached, `gateway.followups`);
- `sent` (and the `sent` of each reference) is kept as its instant in UTC, so a relay that
  re-writes `+09:00` as `+00:00` repeats the alert rather than making a second one;
  Ack and Error are refused (nothing to broadcast).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from gateway.intake import CapOrigin
from gateway.schemas import AlertCreate

NS = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = (
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
    "Infra", "CBRNE", "Other",
)  # fmt: skip
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
ALL_DISTRICTS = "*"
WEB_BUTTON = "관련 정보"

# where an AlertCreate field comes from, to name the CAP element in an error
_SOURCES = {
    "title": "info.headline",
    "body": "info.description",
    "category": "info.severity",
    "buttons": "info.web",
    "audience": "info.area",
    "send_at": "info.effective",
    "expires_at": "info.expires",
}


class CapUnsafe(ValueError):
    """The document is not well-formed XML, is in an encoding expat cannot read, or uses
    DTDs or entities."""


class CapInvalid(ValueError):
    """A well-formed document that is not a valid CAP 1.2 alert; `errors` name the elements."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field: str, message: str) -> CapInvalid:
        """An error about one element."""
        return cls([{"field": field, "message": message}])


@dataclass(frozen=True)
class CapAlert:
    """A parsed CAP alert: what to store (`request`, None for a Cancel) and why to hold it."""

    origin: CapOrigin
    status: str
    msg_type: str
    references: tuple[CapOrigin, ...]
    request: AlertCreate | None
    hold: str | None


class AreaTable:
    """CAP area (areaDesc, or geocode `valueName=value`) -> subscriber district."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = {_area_key(k): v.strip() for k, v in entries.items()}

    @classmethod
    def load(cls, path: Path) -> AreaTable:
        """Read a CSV with columns `area,district` or a JSON object `{area: district}`."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"CAP area table '{path}' cannot be read: {exc}") from exc
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data.items()
            ):
                raise ValueError(f"CAP area table '{path}' is not a JSON object of strings.")
            return cls(data)
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"area", "district"} <= set(rows[0]):
            raise ValueError(f"CAP area table '{path}' needs the columns 'area,district'.")
        return cls({row["area"]: row["district"] for row in rows if row["area"]})

    def district(self, key: str) -> str | None:
        """The district of an area key, `*` for everyone, None when unknown."""
        return self._entries.get(_area_key(key))


def _area_key(key: str) -> str:
    return " ".join(key.split()).casefold()


def parse(document: bytes, areas: AreaTable, now: datetime) -> CapAlert:
    """The CAP alert in `document`; `CapUnsafe` or `CapInvalid` when it is not acceptable."""
    root = _parse_xml(document)
    if root.tag != f"{{{NS}}}alert":
        raise CapInvalid.one("alert", f"The root element must be <alert> in namespace {NS}.")
    origin = CapOrigin(
        sender=_token(root, "sender"), identifier=_token(root, "identifier"), sent=_sent(root)
    )
    status = _choice(root, "status", STATUSES)
    msg_type = _choice(root, "msgType", MSG_TYPES)
    scope = _choice(root, "scope", SCOPES)
    references = _references(root) if msg_type in ("Cancel", "Update") else ()
    if msg_type in ("Ack", "Error"):
        raise CapInvalid.one("alert.msgType", f"msgType {msg_type} has nothing to broadcast.")
    if msg_type == "Cancel":
        if not references:
            raise CapInvalid.one("alert.references", "A Cancel must reference an alert.")
        if status != "Actual":
            raise CapInvalid.one("alert.status", f"A {status} Cancel cancels nothing.")
        return CapAlert(origin, status, msg_type, references, None, None)
    hold = None
    if status != "Actual":
        hold = f"CAP status {status}: accepted, not broadcast."
    elif scope != "Public":
        hold = f"CAP scope {scope}: accepted, not broadcast on a public channel."
    request = _request(_info(root), areas)
    return CapAlert(origin, status, msg_type, references, request, hold)


def _parse_xml(document: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(
            document, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CapUnsafe(f"The CAP document uses a forbidden XML feature: {exc}") from exc
    except ParseError as exc:
        raise CapUnsafe(f"The CAP document is not well-formed XML: {exc}") from exc
    except (ValueError, LookupError) as exc:
        # expat reads UTF-8, UTF-16 and single-byte encodings; e.g. EUC-KR ends here
        raise CapUnsafe(f"The CAP document's encoding cannot be read: {exc}") from exc
    return root


def _find(parent: Element, name: str) -> Element | None:
    return parent.find(f"{{{NS}}}{name}")


def _text(parent: Element, name: str) -> str | None:
    element = _find(parent, name)
    if element is None or element.text is None or not element.text.strip():
        return None
    return element.text.strip()


def _required(parent: Element, name: str, where: str) -> str:
    value = _text(parent, name)
    if value is None:
        raise CapInvalid.one(f"{where}.{name}", f"<{name}> is required.")
    return value


def _token(root: Element, name: str) -> str:
    value = _required(root, name, "alert")
    if any(c.isspace() or c in ",<&" for c in value):
        raise CapInvalid.one(f"alert.{name}", f"<{name}> must not hold spaces, commas, < or &.")
    return value


def _choice(parent: Element, name: str, allowed: tuple[str, ...], where: str = "alert") -> str:
    value = _required(parent, name, where)
    if value not in allowed:
        raise CapInvalid.one(f"{where}.{name}", f"<{name}> must be one of {', '.join(allowed)}.")
    return value


def _time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CapInvalid.one(field, f"'{value}' is not a CAP date-time.") from exc
    if parsed.tzinfo is None:
        raise CapInvalid.one(field, f"'{value}' has no time zone.")
    return parsed


def instant(value: str) -> str:
    """A CAP date-time as its instant in UTC (`2026-03-01T11:00:00+00:00`): relays re-serialise
    `sent` (`+09:00`, `-00:00`, `Z`), and one instant is one alert."""
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


def _sent(root: Element) -> str:
    sent = _required(root, "sent", "alert")
    _time(sent, "alert.sent")
    return instant(sent)


def _references(root: Element) -> tuple[CapOrigin, ...]:
    text = _text(root, "references")
    if text is None:
        return ()
    found = []
    for reference in text.split():
        parts = reference.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapInvalid.one(
                "alert.references", f"'{reference}' is not 'sender,identifier,sent'."
            )
        _time(parts[2], "alert.references")
        found.append(CapOrigin(sender=parts[0], identifier=parts[1], sent=instant(parts[2])))
    return tuple(found)


def _info(root: Element) -> Element:
    infos = root.findall(f"{{{NS}}}info")
    if not infos:
        raise CapInvalid.one("alert.info", "An alert to broadcast needs an <info> block.")
    korean = [i for i in infos if (_text(i, "language") or "").lower().startswith("ko")]
    info = korean[0] if korean else infos[0]
    categories = [c.text.strip() for c in info.findall(f"{{{NS}}}category") if c.text]
    if not categories:
        raise CapInvalid.one("info.category", "<category> is required.")
    for category in categories:
        if category not in CATEGORIES:
            raise CapInvalid.one(
                "info.category", f"<category> must be one of {', '.join(CATEGORIES)}."
            )
    _required(info, "event", "info")
    _choice(info, "urgency", URGENCIES, "info")
    _choice(info, "severity", SEVERITIES, "info")
    _choice(info, "certainty", CERTAINTIES, "info")
    return info


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _request(info: Element, areas: AreaTable) -> AlertCreate:
    urgent = _text(info, "urgency") in ("Immediate", "Expected")
    severe = _text(info, "severity") in ("Extreme", "Severe")
    title = _text(info, "headline") or _required(info, "event", "info")
    body = "\n\n".join(
        t for t in (_text(info, "description"), _text(info, "instruction")) if t
    ) or _required(info, "event", "info")
    fields: dict[str, Any] = {
        "title": _cut(title, 50),
        "body": _cut(body, 1300),
        "category": "emergency" if urgent and severe else "public",
        "audience": _audience(info, areas),
    }
    web = _text(info, "web")
    if web and web.startswith(("http://", "https://")) and len(web) <= 500:
        fields["buttons"] = [{"name": WEB_BUTTON, "link": web}]
    for name, field in (("effective", "send_at"), ("expires", "expires_at")):
        value = _text(info, name)
        if value is not None:
            fields[field] = _time(value, f"info.{name}")
    try:
        return AlertCreate.model_validate(fields)
    except ValidationError as exc:
        raise CapInvalid(
            [
                {"field": _SOURCES.get(str(e["loc"][0]), "info"), "message": e["msg"]}
                for e in exc.errors()
            ]
        ) from exc


def _audience(info: Element, areas: AreaTable) -> Any:
    districts: set[str] = set()
    area_elements = info.findall(f"{{{NS}}}area")
    if not area_elements:
        return "all"
    for area in area_elements:
        keys = [
            f"{_text(g, 'valueName') or ''}={_text(g, 'value') or ''}"
            for g in area.findall(f"{{{NS}}}geocode")
        ]
        description = _text(area, "areaDesc")
        if description is None:
            raise CapInvalid.one("info.area.areaDesc", "<areaDesc> is required.")
        mapped = [d for d in (areas.district(k) for k in [*keys, description]) if d is not None]
        if not mapped:
            raise CapInvalid.one(
                "info.area.areaDesc",
                f"Area '{description}' is not in the area table (nor are its geocodes).",
            )
        if ALL_DISTRICTS in mapped[:1]:
            return "all"
        districts.add(mapped[0])
    return {"districts": sorted(districts)}
