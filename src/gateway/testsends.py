"""Test sends: an alert's message to the deployment's test recipients, before it goes out.

A test send is an alert of its own (`test_of` names its parent) whose audience is the active
subscribers tagged `gateway_test_tag`; it goes through the whole real path (outbox,
planner, senders, provider) without approval, since it reaches only those people. Its
counts are its own, so the parent's delivered, readers and read rate never include it, and
the alert list leaves it out unless asked (`?test_of=`). An operator may test an alert
while it waits for approval, and again after changes elsewhere; each test is audited on
the parent (`alert.test`).

Errors (all `TestSendError`):

    TestSendError
    ├── NotTestable     the parent is rejected, cancelled or expired, or is a test itself
    └── NoTesters       no active subscriber has the test tag, or more than the bound do
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import Audience
from common.models import Alert
from gateway import audiences, audit, intake
from gateway.auth import Principal
from gateway.config import GatewaySettings

logger = logging.getLogger(__name__)

ENDED = frozenset({"rejected", "cancelled", "expired"})


class TestSendError(Exception):
    """A test send that is refused; the message says why."""

    __test__ = False  # not a pytest test class, whatever its name


class NotTestable(TestSendError):
    """The alert cannot be tested any more (or is itself a test send)."""


class NoTesters(TestSendError):
    """The test tag reaches nobody, or more subscribers than a test may reach."""


@dataclass(frozen=True)
class TestSend:
    """A test send that was queued: its own alert, and how many it reaches."""

    __test__ = False  # not a pytest test class, whatever its name

    alert: Alert
    recipients: int


async def send(
    session: AsyncSession,
    parent_id: uuid.UUID,
    principal: Principal,
    settings: GatewaySettings,
    now: datetime,
) -> TestSend:
    """Queue a test send of the parent alert to the test recipients, or raise."""
    tag = settings.gateway_test_tag
    async with session.begin():
        parent = await session.get(Alert, parent_id)
        if parent is None:
            raise intake.AlertNotFound(f"Alert {parent_id} does not exist.")
        if parent.test_of is not None:
            raise NotTestable(
                f"Alert {parent_id} is a test send; test its parent {parent.test_of}."
            )
        if parent.status in ENDED:
            raise NotTestable(f"Alert {parent_id} is {parent.status}; there is nothing to test.")
        audience = Audience(tags=[tag])
        reach = await audiences.reach(session, audience)
        if reach.total == 0:
            raise NoTesters(
                f"No active subscriber is tagged '{tag}': tag the test recipients first "
                f"(ALLIM_GATEWAY_TEST_TAG names the tag)."
            )
        if reach.total > settings.gateway_test_max_recipients:
            raise NoTesters(
                f"{reach.total} subscribers are tagged '{tag}', more than the "
                f"{settings.gateway_test_max_recipients} a test send may reach "
                "(ALLIM_GATEWAY_TEST_MAX_RECIPIENTS): check the tag."
            )
        child = Alert(
            id=uuid.uuid4(),
            title=parent.title,
            body=parent.body,
            category=parent.category,
            buttons=parent.buttons,
            audience=audience.model_dump(),
            status="queued",
            status_reason=f"A test send of alert {parent.id} to the subscribers tagged '{tag}'.",
            author_id=principal.user_id,
            approval="test",
            test_of=parent.id,
            # the testers get the SMS/LMS too when KakaoTalk refuses them, as anyone would
            fallback_codes=parent.fallback_codes,
            sms_kind=parent.sms_kind,
            sms_subject=parent.sms_subject,
            sms_text=parent.sms_text,
            created_at=now,
            updated_at=now,
        )
        session.add(child)
        session.add(intake.requested_record(child, now))
        audit.record(
            session,
            audit.Actor.of(principal),
            "alert.test",
            alert_id=parent.id,
            detail={"test_alert_id": str(child.id), "recipients": reach.total, "tag": tag},
        )
    logger.info(
        "test send queued to %d recipients", reach.total, extra={"alert_id": str(parent.id)}
    )
    return TestSend(child, reach.total)
