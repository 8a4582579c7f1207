"""The SMS/LMS text rules: bytes as carriers count them, SMS or LMS, the advertising marks
and hours, and characters SMS cannot carry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.sms_text import (
    AD_MARK,
    LINK,
    MAX_SMS_BYTES,
    SmsTextError,
    ad_held_until,
    byte_length,
    compose,
    measured,
    replaced,
    unencodable,
)
from common.tokens import TOKEN_LENGTH

BASE = "https://a.kr/r/"  # 15 bytes; with a token, every link is 69


def test_a_hangul_syllable_is_two_bytes_and_ascii_one() -> None:
    assert byte_length("가나다") == 6
    assert byte_length("abc") == 3
    assert byte_length("똠방각하") == 8  # outside KS X 1001's 2,350: CP949 still 2 each


def test_a_short_text_is_an_sms_with_its_link() -> None:
    message = compose("호우", "대피", link_base=BASE, promotional=False, opt_out_number="080")
    assert message.kind == "SMS"
    assert message.text == f"호우\n대피\n{LINK}"
    assert message.length == 4 + 1 + 4 + 1 + len(BASE) + TOKEN_LENGTH
    assert message.length <= MAX_SMS_BYTES


def test_a_100_byte_hangul_text_becomes_an_lms_with_the_title_as_subject() -> None:
    body = "가" * 50  # 100 bytes
    message = compose("태풍 대비", body, link_base=BASE, promotional=False, opt_out_number="080")
    assert (message.kind, message.subject) == ("LMS", "태풍 대비")
    assert message.text == f"{body}\n{LINK}"
    assert message.limit == 2000


def test_only_sms_refuses_what_does_not_fit_90_bytes() -> None:
    with pytest.raises(SmsTextError, match="at most 90 fit"):
        compose(
            "가" * 10,
            "나" * 10,
            link_base=BASE,
            promotional=False,
            opt_out_number="080",
            only_sms=True,
        )


def test_an_lms_over_2000_bytes_is_refused() -> None:
    with pytest.raises(SmsTextError, match="at most 2000"):
        compose("t", "가" * 1000, link_base=BASE, promotional=False, opt_out_number="080")


def test_a_promotional_text_carries_the_ad_mark_and_the_opt_out_line() -> None:
    message = compose(
        "할인",
        "오늘만 할인합니다.",
        link_base=BASE,
        promotional=True,
        opt_out_number="080-1234-5678",
    )
    assert message.kind == "LMS"
    assert message.subject.startswith(AD_MARK)
    assert message.text.startswith(AD_MARK)
    assert message.text.endswith("무료수신거부 080-1234-5678")


def test_emoji_are_refused_or_replaced_as_asked() -> None:
    assert unencodable("대피 😀 🚨") == ["😀", "🚨"]
    with pytest.raises(SmsTextError, match="😀"):
        compose("대피 😀", "b", link_base=BASE, promotional=False, opt_out_number="080")
    message = compose(
        "대피 😀",
        "b",
        link_base=BASE,
        promotional=False,
        opt_out_number="080",
        on_unencodable="replace",
    )
    assert message.text.startswith("대피 ?")
    assert replaced("a😀b") == "a?b"


def test_a_stored_text_is_measured_as_it_was_composed() -> None:
    made = compose("호우", "대피", link_base=BASE, promotional=False, opt_out_number="080")
    assert measured(made.kind, made.subject, made.text, BASE) == made


@pytest.mark.parametrize(
    ("utc", "held"),
    [
        (
            datetime(2026, 12, 7, 13, 30, tzinfo=UTC),
            datetime(2026, 12, 7, 23, 0, tzinfo=UTC),
        ),  # 22:30
        (
            datetime(2026, 12, 7, 20, 0, tzinfo=UTC),
            datetime(2026, 12, 7, 23, 0, tzinfo=UTC),
        ),  # 05:00
        (datetime(2026, 12, 7, 23, 0, tzinfo=UTC), None),  # 08:00 sharp
        (datetime(2026, 12, 7, 11, 59, tzinfo=UTC), None),  # 20:59
        (
            datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
            datetime(2026, 12, 7, 23, 0, tzinfo=UTC),
        ),  # 21:00
    ],
)
def test_advertising_texts_wait_for_eight_to_nine(utc: datetime, held: datetime | None) -> None:
    assert ad_held_until(utc) == held


def test_invisible_and_blank_characters_are_carried_as_nothing_or_a_space() -> None:
    message = compose(
        "대피\u200b안내",
        "지금\u00a0대피\u3000하세요\u2800",
        link_base=BASE,
        promotional=False,
        opt_out_number="080",
    )
    assert (message.kind, message.subject) == ("LMS", "대피안내")
    assert message.text.startswith("지금 대피 하세요 \n")
