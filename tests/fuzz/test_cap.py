"""Fuzz of CAP 1.2 parsing: any document is an alert, `CapUnsafe` or `CapInvalid`, never a crash.

Documents start from a valid alert and are then bent: element texts replaced by arbitrary
text, elements dropped or repeated, the bytes cut short or sprinkled with garbage, DTDs and
entities put in front.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cap import AreaTable, CapAlert, CapInvalid, CapUnsafe, parse

AREAS = AreaTable({"수원시": "*", "장안구": "장안구", "권선구": "권선구", "adm=41111": "장안구"})
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ALERT_FIELDS = {
    "identifier": "KMA-2026-0001",
    "sender": "kma@example.go.kr",
    "sent": "2026-11-25T10:00:00+09:00",
    "status": "Actual",
    "msgType": "Alert",
    "scope": "Public",
    "references": "kma@example.go.kr,KMA-2026-0000,2026-11-24T10:00:00+09:00",
}
INFO_FIELDS = {
    "language": "ko-KR",
    "category": "Met",
    "event": "태풍",
    "urgency": "Expected",
    "severity": "Severe",
    "certainty": "Likely",
    "effective": "2026-11-25T12:00:00+09:00",
    "expires": "2026-11-26T12:00:00+09:00",
    "headline": "태풍 링링 대비 안내",
    "description": "강풍과 호우에 대비하십시오.",
    "instruction": "외출을 자제하십시오.",
    "web": "https://example.go.kr/typhoon",
}
PROLOGUES = (
    "",
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>',
    '<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE alert SYSTEM "http://127.0.0.1:1/cap.dtd">',
    '<?xml version="1.0" encoding="EUC-KR"?>',
)


@st.composite
def cap_documents(draw: st.DrawFn) -> bytes:
    """A CAP document, valid or bent in some of the ways a broken sender bends them."""
    texts = st.one_of(
        st.text(max_size=60),
        st.sampled_from(["", " ", "Actual", "Cancel", "Update", "Ack", "1970-01-01", "a,b"]),
        st.just("x" * 2000),
    )

    def elements(fields: dict[str, str]) -> str:
        parts = []
        for name, value in fields.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # dropped
            if choice == 1:
                value = draw(texts)
            raw = escape(value) if draw(st.booleans()) or choice != 1 else value
            parts.append(f"<{name}>{raw}</{name}>" * (2 if choice == 2 else 1))
        return "".join(parts)

    area = (
        "<area><areaDesc>"
        + escape(draw(st.sampled_from(["수원시", "장안구", "권선구", "부산", ""])))
        + "</areaDesc>"
        + draw(
            st.sampled_from(
                ["", "<geocode><valueName>adm</valueName><value>41111</value></geocode>"]
            )
        )
        + "</area>"
    )
    info = "<info>" + elements(INFO_FIELDS) + area * draw(st.integers(0, 2)) + "</info>"
    namespace = draw(st.sampled_from(["urn:oasis:names:tc:emergency:cap:1.2", "urn:other", ""]))
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = f"<alert{xmlns}>{elements(ALERT_FIELDS)}{info * draw(st.integers(0, 2))}</alert>"
    document = (draw(st.sampled_from(PROLOGUES)) + body).encode()
    mangle = draw(st.integers(0, 5))
    if mangle == 0:
        document = document[: draw(st.integers(0, len(document)))]
    elif mangle == 1:
        at = draw(st.integers(0, len(document)))
        document = document[:at] + draw(st.binary(min_size=1, max_size=16)) + document[at:]
    return document


@settings(max_examples=300, deadline=None, database=None)
@given(cap_documents())
def test_any_document_parses_or_is_refused_cleanly(document: bytes) -> None:
    try:
        alert = parse(document, AREAS, NOW)
    except (CapUnsafe, CapInvalid) as exc:
        assert str(exc)
    else:
        assert isinstance(alert, CapAlert)
        assert alert.request is not None or alert.msg_type == "Cancel"


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused(document: bytes) -> None:
    try:
        parse(document, AREAS, NOW)
    except (CapUnsafe, CapInvalid):
        return
    raise AssertionError(f"random bytes were accepted as CAP: {document!r}")


def test_entity_expansion_is_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa">'
        + "".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
            for p, c in zip("abcdefg", "bcdefgh", strict=True)
        )
        + ']><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><sender>&h;</sender></alert>'
    ).encode()
    try:
        parse(bomb, AREAS, NOW)
    except CapUnsafe:
        return
    raise AssertionError("an entity bomb was parsed")
