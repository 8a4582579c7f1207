"""A client of a running sandbox, for tests and benchmarks: raw sends and look-ups to either
dealer, and the `/_sandbox` endpoints (behaviour, clock, ledger, stats, reset)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import orjson

JsonObject = dict[str, Any]


def _json(response: httpx.Response) -> JsonObject:
    response.raise_for_status()
    document: JsonObject = response.json()
    return document


class SandboxClient:
    """Talks to the sandbox at `http`'s base URL as appkey `appkey` with secret `secret`."""

    def __init__(self, http: httpx.AsyncClient, appkey: str, secret: str) -> None:
        self.http = http
        self.messages_path = f"/v1/appkeys/{appkey}/messages"
        self.sms_path = f"/sms/v3.0/appKeys/{appkey}/sender"
        self._secret = secret

    async def send(
        self,
        body: JsonObject | bytes,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST one batch as it is; the response, whatever its status."""
        sent = {"X-Secret-Key": self._secret, "Content-Type": "application/json"}
        if idempotency_key is not None:
            sent["X-Idempotency-Key"] = idempotency_key
        sent.update(headers or {})
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(self.messages_path, content=content, headers=sent)

    async def look_up(
        self, grouping_key: str, page_num: int = 1, page_size: int = 1000
    ) -> httpx.Response:
        """GET the results of batches sent with `grouping_key`."""
        return await self.http.get(
            self.messages_path,
            params={"senderGroupingKey": grouping_key, "pageNum": page_num, "pageSize": page_size},
            headers={"X-Secret-Key": self._secret},
        )

    async def send_sms(
        self, body: JsonObject | bytes, *, lms: bool = False, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST one batch as it is to `/sender/sms` (or `/sender/mms` for an LMS)."""
        sent = {"X-Secret-Key": self._secret, "Content-Type": "application/json"}
        sent.update(headers or {})
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        path = f"{self.sms_path}/{'mms' if lms else 'sms'}"
        return await self.http.post(path, content=content, headers=sent)

    async def look_up_sms(
        self, grouping_key: str, page_num: int = 1, page_size: int = 1000
    ) -> httpx.Response:
        """GET the results of SMS and LMS batches sent with `grouping_key`."""
        return await self.http.get(
            f"{self.sms_path}/sms",
            params={"senderGroupingKey": grouping_key, "pageNum": page_num, "pageSize": page_size},
            headers={"X-Secret-Key": self._secret},
        )

    async def config(self) -> JsonObject:
        """The behaviour in force."""
        return _json(await self.http.get("/_sandbox/config"))

    async def configure(self, **patch: Any) -> JsonObject:
        """Change some of the behaviour; the behaviour now in force."""
        return _json(await self.http.patch("/_sandbox/config", json=patch))

    async def set_clock(
        self, *, now: datetime | None = None, offset_seconds: float | None = None
    ) -> JsonObject:
        """Set the sandbox clock to `now`, or to wall-clock time plus `offset_seconds`."""
        change: JsonObject = (
            {"now": now.isoformat()} if now is not None else {"offset_seconds": offset_seconds}
        )
        return _json(await self.http.put("/_sandbox/clock", json=change))

    async def ledger(self, alert_id: str) -> JsonObject:
        """Accepted, acceptances and duplicates of one alert."""
        return _json(await self.http.get(f"/_sandbox/ledger/{alert_id}"))

    async def recipients(self, alert_id: str) -> set[str]:
        """Every recipientNo accepted for `alert_id`."""
        return await self._lines(f"/_sandbox/ledger/{alert_id}/recipients")

    async def _lines(self, path: str) -> set[str]:
        found: set[str] = set()
        async with self.http.stream("GET", path) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line:
                    found.add(line)
        return found

    async def sms_config(self) -> JsonObject:
        """The SMS dealer's behaviour in force."""
        return _json(await self.http.get("/_sandbox/sms/config"))

    async def configure_sms(self, **patch: Any) -> JsonObject:
        """Change some of the SMS dealer's behaviour; the behaviour now in force."""
        return _json(await self.http.patch("/_sandbox/sms/config", json=patch))

    async def sms_ledger(self, alert_id: str) -> JsonObject:
        """Accepted, acceptances and duplicates of one alert's SMS and LMS recipients."""
        return _json(await self.http.get(f"/_sandbox/sms/ledger/{alert_id}"))

    async def sms_recipients(self, alert_id: str) -> set[str]:
        """Every recipientNo the SMS dealer accepted for `alert_id`."""
        return await self._lines(f"/_sandbox/sms/ledger/{alert_id}/recipients")

    async def sms_stats(self) -> JsonObject:
        """The SMS dealer's totals and per-second series."""
        return _json(await self.http.get("/_sandbox/sms/stats"))

    async def stats(self) -> JsonObject:
        """Totals and the per-second series of accepted recipients."""
        return _json(await self.http.get("/_sandbox/stats"))

    async def reset(self) -> None:
        """Clear both dealers' ledgers, results, idempotency keys and stats, and scheduled taps."""
        _json(await self.http.post("/_sandbox/reset"))
