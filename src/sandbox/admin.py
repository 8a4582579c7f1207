"""The sandbox's own endpoints under `/_sandbox`: live behaviour, clock, ledger, stats, reset;
those of the SMS dealer under `/_sandbox/sms`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from common.problems import Problem
from sandbox.api import DealerDep
from sandbox.behaviour import DealerBehaviour
from sandbox.clock import in_brand_quiet_hours
from sandbox.dealer import Dealer
from sandbox.dealing import BaseDealer
from sandbox.ledger import AlertLedger
from sandbox.sms_api import SmsDealerDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])


class ClockChange(BaseModel):
    """Set the sandbox clock to `now`, or shift it from wall-clock time by `offset_seconds`."""

    model_config = ConfigDict(extra="forbid")

    now: datetime | None = None
    offset_seconds: float | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.now is None) == (self.offset_seconds is None):
            raise ValueError("Give exactly one of 'now' and 'offset_seconds'.")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("'now' must carry a timezone, e.g. 2026-11-25T21:00:00+09:00.")
        return self


def _clock_document(dealer: Dealer) -> dict[str, Any]:
    now = dealer.clock.now()
    return {
        "now": datetime.fromtimestamp(now, UTC).isoformat(),
        "offset_seconds": dealer.clock.offset,
        "brand_quiet_hours": in_brand_quiet_hours(now),
    }


@router.get("/config", summary="The behaviour in force")
async def get_config(dealer: DealerDep) -> dict[str, Any]:
    return dealer.behaviour.model_dump()


@router.patch("/config", summary="Change some of the behaviour, effective at once")
async def patch_config(
    dealer: DealerDep,
    patch: Annotated[dict[str, Any], Body(examples=[{"messages_per_second": 500}])],
) -> dict[str, Any]:
    return _patched(dealer, patch, "sandbox")


def _patched(dealer: BaseDealer[Any], patch: dict[str, Any], name: str) -> dict[str, Any]:
    """Apply `patch` to the dealer's behaviour; a 400 naming the invalid settings."""
    try:
        behaviour: DealerBehaviour = dealer.behaviour.changed(patch)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "config", "message": e["msg"]}
            for e in exc.errors()
        ]
        fields = ", ".join(sorted({e["field"] for e in errors}))
        raise Problem(
            400, "Invalid behaviour", f"These settings are invalid: {fields}.", errors=errors
        ) from None
    dealer.apply(behaviour)
    logger.info("%s behaviour changed: %s", name, patch)
    return behaviour.model_dump()


@router.get("/clock", summary="The sandbox clock (it decides BRAND quiet hours and key expiry)")
async def get_clock(dealer: DealerDep) -> dict[str, Any]:
    return _clock_document(dealer)


@router.put("/clock", summary="Set or offset the sandbox clock")
async def put_clock(dealer: DealerDep, change: ClockChange) -> dict[str, Any]:
    if change.now is not None:
        dealer.clock.set_now(change.now.timestamp())
    elif change.offset_seconds is not None:
        dealer.clock.offset = change.offset_seconds
    logger.info("sandbox clock set to %s", dealer.clock.datetime().isoformat())
    return _clock_document(dealer)


@router.get("/stats", summary="Totals and accepted recipients per second")
async def get_stats(dealer: DealerDep) -> dict[str, Any]:
    return dealer.stats.document(dealer.simulator.pending)


@router.post(
    "/reset", summary="Forget ledgers, results, keys, stats and scheduled taps of both dealers"
)
async def reset(dealer: DealerDep, sms: SmsDealerDep) -> dict[str, str]:
    dealer.reset()
    sms.reset()
    logger.info("sandbox reset: ledgers, results, keys, stats and scheduled taps cleared")
    return {"status": "reset"}


@router.get("/ledger/{alert_id}", summary="How often each recipient of an alert was accepted")
async def get_ledger(alert_id: str, dealer: DealerDep) -> dict[str, Any]:
    return (dealer.ledger.get(alert_id) or AlertLedger(alert_id)).summary()


@router.get(
    "/ledger/{alert_id}/recipients",
    summary="Every accepted recipientNo of an alert, one a line",
    response_class=StreamingResponse,
)
async def get_ledger_recipients(alert_id: str, dealer: DealerDep) -> StreamingResponse:
    ledger = dealer.ledger.get(alert_id) or AlertLedger(alert_id)
    return StreamingResponse(ledger.recipient_lines(), media_type="text/plain")


@router.get("/sms/config", summary="The SMS dealer's behaviour in force")
async def get_sms_config(sms: SmsDealerDep) -> dict[str, Any]:
    return sms.behaviour.model_dump()


@router.patch("/sms/config", summary="Change some of the SMS dealer's behaviour, at once")
async def patch_sms_config(
    sms: SmsDealerDep,
    patch: Annotated[dict[str, Any], Body(examples=[{"unreachable_share": 0.01}])],
) -> dict[str, Any]:
    return _patched(sms, patch, "sandbox SMS")


@router.get("/sms/stats", summary="SMS dealer totals and accepted recipients per second")
async def get_sms_stats(sms: SmsDealerDep) -> dict[str, Any]:
    document = sms.stats.document(0)
    # the simulator counts the taps of both channels in /_sandbox/stats
    document["totals"] = {k: v for k, v in document["totals"].items() if not k.startswith("taps_")}
    return document


@router.get(
    "/sms/ledger/{alert_id}", summary="How often each SMS recipient of an alert was accepted"
)
async def get_sms_ledger(alert_id: str, sms: SmsDealerDep) -> dict[str, Any]:
    return (sms.ledger.get(alert_id) or AlertLedger(alert_id)).summary()


@router.get(
    "/sms/ledger/{alert_id}/recipients",
    summary="Every recipientNo of an alert the SMS dealer accepted, one a line",
    response_class=StreamingResponse,
)
async def get_sms_ledger_recipients(alert_id: str, sms: SmsDealerDep) -> StreamingResponse:
    ledger = sms.ledger.get(alert_id) or AlertLedger(alert_id)
    return StreamingResponse(ledger.recipient_lines(), media_type="text/plain")
