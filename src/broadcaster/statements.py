"""The broadcaster's larger SQL statements, and the audience filter they share.

Each is one round trip: the settlement of a group of batches, a shard and its position, the
planning of a shard's next batches, a batch's page, the split of a batch that grew, the
alerts that will be late. `broadcaster.store` runs them (the settlement's parameters come
from `settle_parameters`); they live here so that the store reads as what it does. The rate
buckets' statements live with them in `broadcaster.buckets`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from broadcaster.records import Settlement
from common import packing
from common.messages import Audience


def audience_filter(audience: Audience, first_param: int) -> tuple[str, list[Any]]:
    """SQL conditions (AND-ed, each starting with ' AND') and their parameters."""
    if audience.recipients_of is not None:
        frozen = f"SELECT subscriber_id FROM alert_recipients WHERE alert_id = ${first_param}"
        return f" AND id IN ({frozen})", [audience.recipients_of]
    if audience.all:
        return "", []
    sql, params = "", []
    if audience.districts:
        params.append(list(audience.districts))
        sql += f" AND district = ANY(${first_param + len(params) - 1}::varchar[])"
    if audience.tags:
        params.append(list(audience.tags))
        sql += f" AND tags && ${first_param + len(params) - 1}::varchar[]"
    return sql, params


# settles a group of batches of one alert in one statement: each batch `done` with who it
# was sent to and the dealer's code for each (unless it was settled before: then nothing of
# it counts), its shard's checkpoint and counters, the alert's counters, the failures, the
# follow-up batches of recipients to try again (by the batch's channel), and the fallback
# batches of those KakaoTalk refused (by SMS/LMS)
SETTLE = """
WITH i AS (
    SELECT * FROM unnest($2::varchar[], $3::int[], $4::bigint[], $5::int[], $6::int[],
                         $7::int[], $8::varchar[], $9::int[], $10::timestamptz[])
        AS i(id, shard_no, last_id, sent, delivered, failed, follow_id, follow_seq, not_before)
), r AS (
    SELECT * FROM unnest($17::varchar[], $18::bytea[], $19::bytea[])
        AS r(batch_id, sent_ids, codes)
), b AS (
    UPDATE batches SET status = 'done', delivered = i.delivered, failed = i.failed,
        settled_at = now(), sent_ids = r.sent_ids, result_codes = r.codes
    FROM i LEFT JOIN r ON r.batch_id = i.id
    WHERE batches.id = i.id AND batches.status <> 'done'
    RETURNING i.*, batches.channel
), fb AS (
    SELECT * FROM unnest($2::varchar[], $20::varchar[], $21::int[], $22::timestamptz[])
        AS fb(id, fallback_id, fallback_seq, not_before)
), s AS (
    UPDATE shards SET checkpoint_id = GREATEST(COALESCE(checkpoint_id, 0), g.last_id),
        sent = shards.sent + g.sent, delivered = shards.delivered + g.delivered,
        failed = shards.failed + g.failed, updated_at = now()
    FROM (
        SELECT shard_no, max(last_id) AS last_id, sum(sent) AS sent,
            sum(delivered) AS delivered, sum(failed) AS failed
        FROM b GROUP BY shard_no
    ) g
    WHERE shards.alert_id = $1 AND shards.shard_no = g.shard_no
), a AS (
    UPDATE alerts SET delivered = alerts.delivered + g.delivered,
        failed = alerts.failed + g.failed, updated_at = now()
    FROM (SELECT sum(delivered) AS delivered, sum(failed) AS failed FROM b) g
    WHERE alerts.id = $1 AND EXISTS (SELECT 1 FROM b)
), f AS (
    INSERT INTO delivery_failures (alert_id, subscriber_id, batch_id, result_code, reason)
    SELECT $1, t.sid, t.batch_id, t.code, t.reason
    FROM unnest($11::varchar[], $12::bigint[], $13::int[], $14::text[])
        AS t(batch_id, sid, code, reason)
    WHERE t.batch_id IN (SELECT id FROM b)
    ON CONFLICT DO NOTHING
), n AS (
    INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size, status,
                         subscriber_ids, not_before, channel)
    SELECT b.follow_id, $1, b.shard_no, b.follow_seq, x.ids[1], x.ids[cardinality(x.ids)],
           cardinality(x.ids), 'held', x.ids, b.not_before, b.channel
    FROM b JOIN (
        SELECT batch_id, array_agg(sid ORDER BY sid) AS ids
        FROM unnest($15::varchar[], $16::bigint[]) AS t(batch_id, sid) GROUP BY batch_id
    ) x ON x.batch_id = b.follow_id
    ON CONFLICT (id) DO NOTHING
), m AS (
    INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size, status,
                         subscriber_ids, not_before, channel)
    SELECT fb.fallback_id, $1, b.shard_no, fb.fallback_seq, x.ids[1],
           x.ids[cardinality(x.ids)], cardinality(x.ids), 'held', x.ids, fb.not_before, 'sms'
    FROM b JOIN fb ON fb.id = b.id JOIN (
        SELECT batch_id, array_agg(sid ORDER BY sid) AS ids
        FROM unnest($23::varchar[], $24::bigint[]) AS t(batch_id, sid) GROUP BY batch_id
    ) x ON x.batch_id = fb.fallback_id
    ON CONFLICT (id) DO NOTHING
)
SELECT id FROM b
"""


def settle_parameters(alert_id: uuid.UUID, group: Sequence[Settlement]) -> tuple[Any, ...]:
    """`SETTLE`'s parameters for a group of batches of one alert: a list per batch column,
    and the failures, follow-ups and fallbacks flattened to a row per recipient."""
    failures: tuple[list[str], list[int], list[int], list[str]] = ([], [], [], [])
    held: tuple[list[str], list[int]] = ([], [])
    record: tuple[list[str], list[bytes], list[bytes]] = ([], [], [])
    fallback: tuple[list[str], list[int]] = ([], [])
    for s in group:
        if s.fallback is not None:
            fallback[0].extend([s.fallback.batch_id] * len(s.fallback.subscriber_ids))
            fallback[1].extend(s.fallback.subscriber_ids)
        record[0].append(s.batch_id)
        record[1].append(packing.ids(s.sent_ids))
        record[2].append(packing.codes(s.codes))
        failures[0].extend([s.batch_id] * len(s.failed_ids))
        failures[1].extend(s.failed_ids)
        failures[2].extend(s.failed_codes)
        failures[3].extend(s.failed_reasons)
        if s.follow_up is not None:
            held[0].extend([s.follow_up.batch_id] * len(s.follow_up.subscriber_ids))
            held[1].extend(s.follow_up.subscriber_ids)
    return (
        alert_id,
        [s.batch_id for s in group],
        [s.shard_no for s in group],
        [s.last_id for s in group],
        [s.sent for s in group],
        [s.delivered for s in group],
        [len(s.failed_ids) for s in group],
        [s.follow_up.batch_id if s.follow_up else None for s in group],
        [s.follow_up.seq if s.follow_up else None for s in group],
        [s.follow_up.not_before if s.follow_up else None for s in group],
        *failures,
        *held,
        *record,
        [s.fallback.batch_id if s.fallback else None for s in group],
        [s.fallback.seq if s.fallback else None for s in group],
        [s.fallback.not_before if s.fallback else None for s in group],
        *fallback,
    )


# a shard, the number of its next batch and the position its range batches reached (the
# last id of the furthest; follow-ups, which list their recipients, do not move it)
SHARD = """
SELECT s.first_id, s.last_id, s.status, b.next_seq, b.position
FROM shards s,
LATERAL (
    SELECT COALESCE(max(seq) + 1, 0) AS next_seq,
           max(last_id) FILTER (WHERE subscriber_ids IS NULL) AS position
    FROM batches WHERE alert_id = s.alert_id AND shard_no = s.shard_no
) b
WHERE s.alert_id = $1 AND s.shard_no = $2
"""

# a batch's page: up to $3 active subscribers of the audience with $1 < id <= $2, read when
# the batch is sent
PAGE = """
SELECT id, recipient_no FROM subscribers
WHERE id > $1 AND id <= $2 AND status = 'active'{conditions}
ORDER BY id LIMIT $3
"""

# the shard's next batches, written `sending` before any of them is sent, in one statement:
# up to $8 ranges of at most $7 subscribers of the audience after $5, walked one range after
# the other by index scans of ids only, numbered from $4 (ids `$1 || seq`). Each range comes
# back with its id when its row was written (none: the batch id exists already). The recipients
# are read per batch, when it is sent (`Store.page`), so opt-outs made meanwhile count.
PLAN_BATCHES = """
WITH RECURSIVE r(seq, first_id, last_id, size) AS (
    SELECT $4::int, p.first_id, p.last_id, p.size FROM (
        SELECT min(id) AS first_id, max(id) AS last_id, count(*) AS size FROM (
            SELECT id FROM subscribers WHERE id > $5 AND id <= $6
            AND status = 'active'{conditions} ORDER BY id LIMIT $7::int
        ) page
    ) p WHERE p.size > 0
  UNION ALL
    SELECT r.seq + 1, p.first_id, p.last_id, p.size FROM r, LATERAL (
        SELECT min(id) AS first_id, max(id) AS last_id, count(*) AS size FROM (
            SELECT id FROM subscribers WHERE id > r.last_id AND id <= $6
            AND status = 'active'{conditions} ORDER BY id LIMIT $7::int
        ) page
    ) p WHERE p.size > 0 AND r.size = $7::int AND r.seq + 1 < $4::int + $8::int
), w AS (
    INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size, status, attempts)
    SELECT $1::text || r.seq, $2, $3, r.seq, r.first_id, r.last_id, r.size, 'sending', 1 FROM r
    ON CONFLICT (id) DO NOTHING
    RETURNING id, seq
)
SELECT w.id, r.seq, r.first_id, r.last_id FROM r LEFT JOIN w ON w.seq = r.seq ORDER BY r.seq
"""

# a planned batch whose range now holds more than a batch (subscribers who joined its part of
# the audience since it was planned): it ends earlier, and a new batch of its alert and shard
# takes the rest
SPLIT_BATCH = """
WITH shortened AS (
    UPDATE batches SET last_id = $2, size = $3 WHERE id = $1 AND status = 'sending'
)
INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size, status, attempts)
SELECT $4, alert_id, shard_no, $5, $6, $7, $8, 'sending', 1 FROM batches WHERE id = $1
"""


# sending alerts that miss their deadline (started_at + deliver_within): it has passed, or the
# rate since the start (recipients settled per second) leaves the rest for after it; a
# paused alert counts too, since the clock runs on
LATE = """
SELECT id FROM alerts
WHERE status = 'sending' AND deliver_within IS NOT NULL AND started_at IS NOT NULL
  AND (now() > started_at + make_interval(secs => deliver_within)
       OR (delivered + failed > 0 AND now() + (now() - started_at)
           * ((targeted - delivered - failed)::float8 / (delivered + failed))
           > started_at + make_interval(secs => deliver_within)))
"""
