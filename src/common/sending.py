"""The sending policy the broadcaster applies and the gateway's preview describes.

The send rate and the operator's quiet hours are read by the broadcaster (which applies
them) and by the gateway (whose preview estimates a broadcast's duration and warns about
quiet hours), so both settings classes extend `SendingSettings`: one definition, the same
`ALLIM_BROADCASTER_*` variables.
"""

from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator

from common.config import CommonSettings
from common.quiet_hours import QuietHours, zone


class SendingSettings(CommonSettings):
    """The send rate and quiet hours, shared by the broadcaster and the gateway."""

    broadcaster_rate_messages_per_second: float = Field(
        0.0,
        ge=0,
        description="Messages/s all sender processes together may send (0: learned, see "
        "ALLIM_BROADCASTER_RATE_LEARN).",
    )
    broadcaster_rate_requests_per_second: float = Field(
        0.0,
        ge=0,
        description="Provider requests/s all sender processes together may make (0: unlimited).",
    )
    broadcaster_quiet_start: time = Field(
        time(20, 50), description="Start of the quiet hours that hold promotional alerts."
    )
    broadcaster_quiet_end: time = Field(
        time(8, 0), description="End of the quiet hours (equal to the start: no quiet hours)."
    )
    broadcaster_quiet_timezone: str = Field(
        "Asia/Seoul", description="IANA time zone of the quiet hours."
    )

    @field_validator("broadcaster_quiet_timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        # refused at start-up, in every process that reads it, not at the first preview
        zone(name)
        return name

    def quiet_hours(self) -> QuietHours:
        """The operator's quiet hours, when promotional alerts wait."""
        return QuietHours(
            self.broadcaster_quiet_start,
            self.broadcaster_quiet_end,
            self.broadcaster_quiet_timezone,
        )
