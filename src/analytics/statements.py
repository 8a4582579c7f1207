"""The SQL statements of the analytics rollups: a poll's, in the order it runs them, then
the snapshots' and the clean-up's.

`analytics.store` runs them (a poll's in one transaction); they live here so that the store
reads as what it does.
"""

from __future__ import annotations

TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS analytics_ids (
    event_id text COLLATE "C" NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS analytics_taps (
    seq integer NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    alert_id uuid NOT NULL,
    subscriber_id bigint NOT NULL,
    reader_id text COLLATE "C" NOT NULL,
    tapped_at timestamptz NOT NULL
) ON COMMIT DELETE ROWS;
"""

NEW_EVENT_IDS = """
INSERT INTO processed_events (consumer, event_id)
SELECT $1, event_id FROM analytics_ids
ON CONFLICT DO NOTHING
RETURNING event_id
"""

# taps stay in the database: their ids are inserted, and only when fewer were new than the
# poll holds are the ones seen before deleted from the temp table (DROP_SEEN_TAPS)
NEW_TAPS = """
WITH fresh AS (
    INSERT INTO processed_events (consumer, event_id)
    SELECT $1, event_id FROM analytics_taps
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) AS fresh FROM fresh
"""

# a tap id whose processed_events row was not written by this transaction was applied before
DROP_SEEN_TAPS = """
DELETE FROM analytics_taps t USING processed_events p
WHERE p.consumer = $1 AND p.event_id = t.event_id AND p.xmin <> pg_current_xact_id()::xid
"""

# the first tapper of each token in this poll becomes its first reader, unless one exists
NEW_TOKEN_READERS = """
WITH inserted AS (
    INSERT INTO token_first_readers (alert_id, subscriber_id, reader_id)
    SELECT DISTINCT ON (alert_id, subscriber_id) alert_id, subscriber_id, reader_id
    FROM analytics_taps
    ORDER BY alert_id, subscriber_id, seq
    ON CONFLICT DO NOTHING
    RETURNING alert_id
)
SELECT alert_id, count(*) AS n FROM inserted GROUP BY alert_id
"""

# each reader's first tap in this poll; new when the reader had no row for the alert yet
NEW_READERS = """
WITH firsts AS (
    SELECT DISTINCT ON (alert_id, reader_id) alert_id, reader_id, subscriber_id, tapped_at
    FROM analytics_taps
    ORDER BY alert_id, reader_id, seq
), inserted AS (
    INSERT INTO alert_readers AS r (alert_id, reader_id, subscriber_id, forwarded, first_read_at)
    SELECT f.alert_id, f.reader_id, f.subscriber_id,
           -- one primary-key lookup per reader: a join read all of the alert's tokens
           (SELECT t.reader_id FROM token_first_readers t
            WHERE t.alert_id = f.alert_id AND t.subscriber_id = f.subscriber_id) <> f.reader_id,
           f.tapped_at
    FROM firsts f
    ON CONFLICT DO NOTHING
    RETURNING alert_id, forwarded, first_read_at,
              EXISTS (SELECT 1 FROM alert_sms_reached s
                      WHERE s.alert_id = r.alert_id AND s.subscriber_id = r.subscriber_id) AS sms
)
SELECT alert_id, date_trunc('minute', first_read_at) AS minute,
       count(*) AS readers, count(*) FILTER (WHERE forwarded) AS forwarded,
       count(*) FILTER (WHERE sms) AS sms
FROM inserted GROUP BY 1, 2
"""

# per alert, one lock that orders applying SMS deliveries against applying taps (the
# two-key form: its own key space, apart from the broadcaster's shard locks)
LOCK_ALERT = "SELECT pg_advisory_xact_lock(1, hashtext($1::uuid::text))"
LOCK_ALERT_SHARED = "SELECT pg_advisory_xact_lock_shared(1, hashtext($1::uuid::text))"

NEW_SMS_REACHED = """
INSERT INTO alert_sms_reached (alert_id, subscriber_id)
SELECT * FROM unnest($1::uuid[], $2::bigint[])
ON CONFLICT DO NOTHING
RETURNING alert_id, subscriber_id
"""

# of the subscribers SMS just reached, those whose link was opened already (a key lookup
# each: usually none, as the delivery comes before its taps)
TAPPED = """
SELECT subscriber_id FROM token_first_readers
WHERE alert_id = $1 AND subscriber_id = ANY($2::bigint[])
"""

READERS_OF_LINKS = """
SELECT count(*) FROM alert_readers WHERE alert_id = $1 AND subscriber_id = ANY($2::bigint[])
"""

TAPS_BY_MINUTE = """
SELECT alert_id, date_trunc('minute', tapped_at) AS minute, count(*) AS taps
FROM analytics_taps GROUP BY 1, 2
"""

UPSERT_MINUTES = """
INSERT INTO alert_reads_minute AS m (alert_id, minute, reads, new_readers)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::bigint[])
ON CONFLICT (alert_id, minute) DO UPDATE SET
    reads = m.reads + EXCLUDED.reads,
    new_readers = m.new_readers + EXCLUDED.new_readers
"""

UPSERT_STATS = """
INSERT INTO alert_stats AS s (
    alert_id, category, targeted, delivered, failed, failed_by_reason, readers,
    first_readers, forwarded_readers, taps, status, started_at, completed_at,
    first_delivery_at, last_delivery_at, sms_delivered, sms_failed, sms_readers, updated_at)
SELECT a, c, tg, d, f, fr::jsonb, r, fi, fw, tp, st, sa, ca, fd, ld, sd, sf, sr, now()
FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[],
            $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
            $16::bigint[], $17::bigint[], $18::bigint[])
     AS u(a, c, tg, d, f, fr, r, fi, fw, tp, st, sa, ca, fd, ld, sd, sf, sr)
ON CONFLICT (alert_id) DO UPDATE SET
    category = COALESCE(EXCLUDED.category, s.category),
    targeted = GREATEST(s.targeted, EXCLUDED.targeted),
    delivered = s.delivered + EXCLUDED.delivered,
    failed = s.failed + EXCLUDED.failed,
    failed_by_reason = (
        SELECT COALESCE(jsonb_object_agg(key, total), '{}'::jsonb)
        FROM (SELECT key, sum(value::bigint) AS total
              FROM (SELECT * FROM jsonb_each_text(s.failed_by_reason)
                    UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.failed_by_reason)) AS both_
              GROUP BY key) AS summed),
    readers = s.readers + EXCLUDED.readers,
    first_readers = s.first_readers + EXCLUDED.first_readers,
    forwarded_readers = s.forwarded_readers + EXCLUDED.forwarded_readers,
    taps = s.taps + EXCLUDED.taps,
    status = COALESCE(EXCLUDED.status, s.status),
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    completed_at = GREATEST(s.completed_at, EXCLUDED.completed_at),
    first_delivery_at = LEAST(s.first_delivery_at, EXCLUDED.first_delivery_at),
    last_delivery_at = GREATEST(s.last_delivery_at, EXCLUDED.last_delivery_at),
    sms_delivered = s.sms_delivered + EXCLUDED.sms_delivered,
    sms_failed = s.sms_failed + EXCLUDED.sms_failed,
    sms_readers = s.sms_readers + EXCLUDED.sms_readers,
    updated_at = now()
RETURNING alert_id, category
"""

SNAPSHOT = """
SELECT alert_id, category, targeted, delivered, failed, failed_by_reason, readers,
       first_readers, forwarded_readers, taps, sms_delivered, sms_failed, sms_readers, updated_at
FROM alert_stats WHERE alert_id = ANY($1::uuid[])
"""

RECENT = "SELECT alert_id FROM alert_stats ORDER BY updated_at DESC LIMIT $1"

FORGET = "DELETE FROM processed_events WHERE consumer = $1 AND processed_at < now() - $2::interval"
