"""GET /r/{token} (taps on the real `engagement` topic) and the landing page GET /a/{id}."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.events import LINK_TAPPED, CloudEvent
from common.kafka import create_producer
from common.messages import TapData
from common.models import Alert
from common.readback import read_back
from common.tokens import TokenSigner
from common.topics import ENGAGEMENT, partitions
from gateway.config import GatewaySettings
from gateway.landing import AlertPage, PageCache
from gateway.main import create_app
from gateway.metrics import GatewayMetrics
from gateway.state import KafkaLink
from gateway.tap_publisher import TapPublisher
from gateway.taps import READER_COOKIE_MAX_AGE

pytestmark = pytest.mark.integration

BASE_URL = "http://gateway.test"


@pytest.fixture(scope="module")
def signer(gateway_settings: GatewaySettings) -> TokenSigner:
    return TokenSigner(gateway_settings.tracking_secret.get_secret_value().encode())


async def new_alert(engine: AsyncEngine, **changes: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "title": "태풍 링링 대비 안내",
        "body": "강풍에 대비해 외출을 삼가 주세요.\n대피소를 확인하세요.",
        "category": "emergency",
        "buttons": [],
        "audience": {"all": True},
    }
    values.update(changes)
    async with session_factory(engine)() as session:
        session.add(Alert(**values))
        await session.commit()
    alert_id: uuid.UUID = values["id"]
    return alert_id


async def read_taps(
    bootstrap: str, alert_id: uuid.UUID, count: int, within: float = 20.0
) -> list[CloudEvent]:
    """The tap events of one alert, read from the start until `count` came (and then a
    little longer, so that an extra one would show) or `within` seconds passed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: list[CloudEvent] = []
    try:
        assigned = partitions(ENGAGEMENT)
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        extra_until: float | None = None
        while loop.time() < (extra_until or deadline):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(
                    CloudEvent.from_record(r.headers, r.value)
                    for r in records
                    if r.key == str(alert_id).encode()
                )
            if len(found) >= count and extra_until is None:
                extra_until = loop.time() + 0.5
    finally:
        await consumer.stop()
    return found


async def taps_counted(client: httpx.AsyncClient, outcome: str) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "allim_gateway_taps_total" and sample.labels == {"outcome": outcome}:
                return sample.value
    return 0.0


async def test_tap_records_a_read_sets_the_reader_and_redirects(
    gateway_app: FastAPI,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    kafka_topics: str,
    signer: TokenSigner,
) -> None:
    alert_id = await new_alert(engine)
    token = signer.sign(alert_id, 42, int(time.time()) + 3600)

    first = await client.get(f"/r/{token}")
    assert first.status_code == 302
    assert first.headers["location"] == f"/a/{alert_id}?t={token}"
    assert first.headers["cache-control"] == "no-store"
    cookie = first.headers["set-cookie"].lower()
    assert cookie.startswith("allim_reader=")
    for attribute in ("httponly", "samesite=lax", f"max-age={READER_COOKIE_MAX_AGE}", "path=/"):
        assert attribute in cookie
    reader = client.cookies["allim_reader"]

    again = await client.get(f"/r/{token}")
    assert again.status_code == 302
    assert "set-cookie" not in again.headers  # the same reader keeps their id

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway_app), base_url=BASE_URL
    ) as someone_else:
        forwarded = await someone_else.get(f"/r/{token}")
        other_reader = someone_else.cookies["allim_reader"]
    assert forwarded.status_code == 302
    assert other_reader != reader

    events = await read_taps(kafka_topics, alert_id, 3)
    assert len(events) == 3
    assert len({event.id for event in events}) == 3
    assert {(event.type, event.source) for event in events} == {(LINK_TAPPED, "/allim/gateway")}
    taps = [TapData.model_validate(event.data) for event in events]
    assert {(tap.alert_id, tap.subscriber_id) for tap in taps} == {(alert_id, 42)}
    assert sorted(tap.reader_id for tap in taps) == sorted([reader, reader, other_reader])


def _forgeries(signer: TokenSigner, alert_id: uuid.UUID) -> list[str]:
    good = signer.sign(alert_id, 7, int(time.time()) + 3600)
    return [
        TokenSigner(b"another-secret-of-32-bytes-long!").sign(alert_id, 7, int(time.time()) + 60),
        good[:-1],  # truncated
        good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],  # signature altered
        good + "A",  # too long
        signer.sign(alert_id, 7, int(time.time()) - 1),  # expired
        "!" * len(good),
    ]


async def test_bad_tokens_get_404_and_record_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, kafka_topics: str, signer: TokenSigner
) -> None:
    alert_id = await new_alert(engine)
    invalid_before = await taps_counted(client, "invalid")
    forgeries = _forgeries(signer, alert_id)
    for token in forgeries:
        response = await client.get(f"/r/{token}")
        assert response.status_code == 404, token
        assert response.headers["content-type"] == "application/problem+json"
        assert "set-cookie" not in response.headers
    assert await taps_counted(client, "invalid") == invalid_before + len(forgeries)

    # a good tap after them: had any forgery been published, it would come before this one
    marker = await client.get(f"/r/{signer.sign(alert_id, 8, int(time.time()) + 60)}")
    assert marker.status_code == 302
    events = await read_taps(kafka_topics, alert_id, 1)
    assert [event.data["subscriber_id"] for event in events] == [8]


async def requests_counted(client: httpx.AsyncClient, method: str, status: int) -> float:
    text = (await client.get("/metrics")).text
    labels = {"method": method, "route": "/r/{token}", "status": str(status)}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "allim_gateway_requests_total" and sample.labels == labels:
                return sample.value
    return 0.0


async def test_tap_route_counts_its_requests_and_refuses_other_methods(
    client: httpx.AsyncClient, engine: AsyncEngine, signer: TokenSigner
) -> None:
    alert_id = await new_alert(engine)
    token = signer.sign(alert_id, 9, int(time.time()) + 60)
    before = [await requests_counted(client, "GET", s) for s in (302, 404)]
    assert (await client.get(f"/r/{token}")).status_code == 302
    assert (await client.get(f"/r/{token[:-1]}")).status_code == 404
    after = [await requests_counted(client, "GET", s) for s in (302, 404)]
    assert after == [before[0] + 1, before[1] + 1]

    for method in ("POST", "HEAD", "DELETE"):
        refused = await client.request(method, f"/r/{token}")
        assert refused.status_code == 405, method
        assert refused.headers["allow"] == "GET"
        assert refused.headers["content-type"] == "application/problem+json"
    assert await requests_counted(client, "POST", 405) >= 1
    # a path that only starts like a tap is the app's to answer
    deeper = await client.get(f"/r/{token}/more")
    assert deeper.status_code == 404
    assert "set-cookie" not in deeper.headers


async def test_link_previews_are_redirected_but_not_counted(
    client: httpx.AsyncClient, engine: AsyncEngine, kafka_topics: str, signer: TokenSigner
) -> None:
    alert_id = await new_alert(engine)
    preview = await client.get(
        f"/r/{signer.sign(alert_id, 1, int(time.time()) + 60)}",
        headers={"User-Agent": "facebookexternalhit/1.1;kakaotalk-scrap/1.0"},
    )
    assert preview.status_code == 302
    await client.get(f"/r/{signer.sign(alert_id, 2, int(time.time()) + 60)}")
    events = await read_taps(kafka_topics, alert_id, 1)
    assert [event.data["subscriber_id"] for event in events] == [2]


async def test_a_burst_of_taps_is_answered_and_recorded(
    gateway_app: FastAPI, engine: AsyncEngine, kafka_topics: str, signer: TokenSigner
) -> None:
    alert_id = await new_alert(engine)
    expires = int(time.time()) + 3600
    transport = httpx.ASGITransport(app=gateway_app)

    async def tap(subscriber_id: int) -> int:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as reader:
            response = await reader.get(f"/r/{signer.sign(alert_id, subscriber_id, expires)}")
            return response.status_code

    statuses = await asyncio.gather(*(tap(n) for n in range(300)))
    assert set(statuses) == {302}
    events = await read_taps(kafka_topics, alert_id, 300)
    assert sorted(event.data["subscriber_id"] for event in events) == list(range(300))


async def test_without_kafka_taps_are_dropped_but_still_redirected(
    gateway_settings: GatewaySettings, engine: AsyncEngine, signer: TokenSigner
) -> None:
    settings = gateway_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    app = create_app(settings)
    alert_id = await new_alert(engine)
    async with app.router.lifespan_context(app):
        assert not app.state.gateway.kafka.ready.is_set()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            response = await http.get(f"/r/{signer.sign(alert_id, 3, int(time.time()) + 60)}")
            assert response.status_code == 302
            assert "allim_reader=" in response.headers["set-cookie"]
            assert await taps_counted(http, "dropped") == 1
            page = await http.get(response.headers["location"])
            assert page.status_code == 200


async def test_taps_do_not_need_the_database(
    gateway_settings: GatewaySettings, kafka_topics: str, signer: TokenSigner
) -> None:
    settings = gateway_settings.model_copy(
        update={"database_url": "postgresql+asyncpg://allim@127.0.0.1:9/nowhere"}
    )
    app = create_app(settings)
    alert_id = uuid.uuid4()
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            response = await http.get(f"/r/{signer.sign(alert_id, 4, int(time.time()) + 60)}")
        assert response.status_code == 302
        events = await read_taps(kafka_topics, alert_id, 1)
    assert [event.data["subscriber_id"] for event in events] == [4]


async def test_landing_page_shows_the_alert_escaped_with_its_share_link(
    client: httpx.AsyncClient, engine: AsyncEngine, signer: TokenSigner
) -> None:
    alert_id = await new_alert(
        engine,
        title="<b>수원시</b> 폭염 경보",
        body="한낮 외출 자제.\n<script>alert(1)</script>",
        buttons=[
            {"name": "무더위 쉼터", "link": "https://example.org/s?a=1&b=2"},
            {"name": "나쁜 링크", "link": "javascript:alert(1)"},
            {"name": "자세히 보기", "link": "#{link}"},
        ],
    )
    token = signer.sign(alert_id, 5, int(time.time()) + 3600)
    response = await client.get(f"/a/{alert_id}", params={"t": token})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.content.decode("utf-8")
    assert '<html lang="ko">' in page
    assert "&lt;b&gt;수원시&lt;/b&gt; 폭염 경보" in page
    assert "한낮 외출 자제.\n&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert (
        '<a href="https://example.org/s?a=1&amp;b=2" rel="noopener nofollow">무더위 쉼터</a>'
        in page
    )
    assert "javascript:alert" not in page
    assert "#{link}" not in page
    assert f'value="{BASE_URL}/r/{token}"' in page

    untracked = (await client.get(f"/a/{alert_id}")).text
    assert f'value="{BASE_URL}/a/{alert_id}"' in untracked
    other_alert = signer.sign(uuid.uuid4(), 5, int(time.time()) + 3600)
    edited = (await client.get(f"/a/{alert_id}", params={"t": other_alert})).text
    assert f'value="{BASE_URL}/a/{alert_id}"' in edited


@pytest.mark.parametrize("alert_id", [str(uuid.uuid4()), "not-an-id"])
async def test_unknown_alert_is_a_404_page(client: httpx.AsyncClient, alert_id: str) -> None:
    response = await client.get(f"/a/{alert_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "알림을 찾을 수 없습니다" in response.text


async def test_landing_content_is_served_from_memory(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    alert_id = await new_alert(engine, title="첫 제목")
    assert "첫 제목" in (await client.get(f"/a/{alert_id}")).text
    async with session_factory(engine)() as session:
        await session.execute(update(Alert).where(Alert.id == alert_id).values(title="새 제목"))
        await session.commit()
    assert "첫 제목" in (await client.get(f"/a/{alert_id}")).text


def _page(alert_id: uuid.UUID) -> AlertPage:
    return AlertPage(alert_id, "제목", "본문", "public", (), datetime.now(UTC))


class Loader:
    """Counts loads; each waits for `gate` so that callers can pile up."""

    def __init__(self, known: set[uuid.UUID]) -> None:
        self.known = known
        self.calls: list[uuid.UUID] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, alert_id: uuid.UUID) -> AlertPage | None:
        self.calls.append(alert_id)
        self.entered.set()
        await self.gate.wait()
        return _page(alert_id) if alert_id in self.known else None


async def test_page_cache_loads_once_for_concurrent_misses() -> None:
    alert_id = uuid.uuid4()
    load = Loader({alert_id})
    load.gate.clear()
    cache = PageCache(size=4, ttl_seconds=60)
    waiting = [asyncio.ensure_future(cache.get(alert_id, load)) for _ in range(50)]
    # the load runs after every get() was started (tasks run in the order they were made)
    await asyncio.wait_for(load.entered.wait(), 30)
    assert not any(get.done() for get in waiting)  # all 50 wait for the one load
    load.gate.set()
    pages = await asyncio.gather(*waiting)
    assert load.calls == [alert_id]
    assert {page.alert_id for page in pages if page is not None} == {alert_id}


async def test_page_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    ids = [uuid.uuid4() for _ in range(3)]
    load = Loader(set(ids))
    cache = PageCache(size=2, ttl_seconds=10, clock=lambda: now[0])
    for alert_id in ids:
        await cache.get(alert_id, load)
    assert len(cache) == 2
    await cache.get(ids[2], load)  # still cached
    await cache.get(ids[0], load)  # evicted as the least recently used: loaded again
    assert load.calls == [*ids, ids[0]]
    now[0] = 11.0
    await cache.get(ids[0], load)  # expired
    assert load.calls[-1] == ids[0] and len(load.calls) == 5


async def test_page_cache_forgets_unknown_alerts_soon() -> None:
    now = [0.0]
    missing = uuid.uuid4()
    load = Loader(set())
    cache = PageCache(size=2, ttl_seconds=60, clock=lambda: now[0])
    assert await cache.get(missing, load) is None
    assert await cache.get(missing, load) is None
    now[0] = 6.0
    load.known.add(missing)
    assert await cache.get(missing, load) is not None
    assert len(load.calls) == 2


def _counted(metrics: GatewayMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("allim_gateway_taps_total", {"outcome": outcome})
    return value or 0.0


def _tap(alert_id: uuid.UUID, n: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    event = CloudEvent(type=LINK_TAPPED, source="/test", data={"n": n})
    return str(alert_id).encode(), event.value(), event.headers()


@pytest.fixture
async def connected(kafka_topics: str) -> AsyncIterator[KafkaLink]:
    """A producer connected to the test broker, as the gateway's is."""
    link = KafkaLink(create_producer(kafka_topics, "allim-test-taps"))
    await link.producer.start()
    link.ready.set()
    try:
        yield link
    finally:
        await link.producer.stop()


async def test_publisher_sends_a_burst_in_batches_and_records_each(
    connected: KafkaLink, kafka_topics: str
) -> None:
    metrics = GatewayMetrics()
    publisher = TapPublisher(metrics, max_pending=1000)
    alerts = [uuid.uuid4(), uuid.uuid4()]
    for n in range(400):  # taken in one go: the drain task runs after them
        assert publisher.publish(connected, *_tap(alerts[n % 2], n))
    assert publisher.pending == 400
    await asyncio.wait_for(publisher.flush(), 30)
    assert publisher.pending == 0
    assert (_counted(metrics, "recorded"), _counted(metrics, "dropped")) == (400, 0)
    for index, alert_id in enumerate(alerts):
        events = await read_taps(kafka_topics, alert_id, 200)
        assert sorted(event.data["n"] for event in events) == list(range(index, 400, 2))


async def test_publisher_keeps_an_alerts_taps_on_the_partition_send_picks(
    connected: KafkaLink, kafka_topics: str
) -> None:
    alert_id = uuid.uuid4()
    publisher = TapPublisher(GatewayMetrics(), max_pending=10)
    publisher.publish(connected, *_tap(alert_id, 1))
    await asyncio.wait_for(publisher.flush(), 30)
    sent = await connected.producer.send_and_wait(ENGAGEMENT, b"{}", key=str(alert_id).encode())
    records = await read_back(
        kafka_topics, ENGAGEMENT, {str(alert_id)}, enough=lambda r: len(r) >= 2
    )
    assert {record.partition for record in records} == {sent.partition}


async def test_publisher_drops_past_its_bound_and_counts_it(
    connected: KafkaLink, kafka_topics: str
) -> None:
    metrics = GatewayMetrics()
    publisher = TapPublisher(metrics, max_pending=5)
    alert_id = uuid.uuid4()
    taken = [publisher.publish(connected, *_tap(alert_id, n)) for n in range(8)]
    assert taken == [True] * 5 + [False] * 3
    assert _counted(metrics, "dropped") == 3
    await asyncio.wait_for(publisher.flush(), 30)
    assert _counted(metrics, "recorded") == 5
    assert publisher.publish(connected, *_tap(alert_id, 8))  # room again
    await asyncio.wait_for(publisher.flush(), 30)
    events = await read_taps(kafka_topics, alert_id, 6)
    assert sorted(event.data["n"] for event in events) == [0, 1, 2, 3, 4, 8]
    assert _counted(metrics, "recorded") == 6


async def test_publisher_counts_what_kafka_refuses_as_failed(connected: KafkaLink) -> None:
    metrics = GatewayMetrics()
    publisher = TapPublisher(metrics, max_pending=10)
    alert_id = uuid.uuid4()
    key, _, headers = _tap(alert_id, 0)
    # larger than the broker takes in one batch (message.max.bytes): refused, not retried
    assert publisher.publish(connected, key, b"x" * (3 << 20), headers)
    await asyncio.wait_for(publisher.flush(), 60)
    assert (_counted(metrics, "failed"), _counted(metrics, "recorded")) == (1, 0)
    assert publisher.pending == 0


async def test_publisher_without_a_connected_producer_drops(kafka_topics: str) -> None:
    metrics = GatewayMetrics()
    publisher = TapPublisher(metrics, max_pending=10)
    link = KafkaLink(create_producer(kafka_topics, "allim-test-taps"))  # never started
    assert not publisher.publish(link, *_tap(uuid.uuid4(), 0))
    assert (_counted(metrics, "dropped"), publisher.pending) == (1, 0)
    await asyncio.wait_for(publisher.flush(), 1)  # nothing to wait for
    await link.producer.stop()
