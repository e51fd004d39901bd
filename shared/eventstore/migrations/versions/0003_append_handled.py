"""append handled: a delivery's events, outbox rows and inbox row in one statement

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from importlib import import_module

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Replaces `alchemiser_append` of 0001 (same statements, plus the inbox row), flat rather than
# calling it: a nested PL/pgSQL call cost ~80 µs of server time per append here.
# `SqlEventStore.append` sends it as a single statement outside any explicit transaction: the
# statement is its own transaction, one round trip instead of three (BEGIN, call, COMMIT). In a
# VOLATILE PL/pgSQL function every statement takes a fresh snapshot (READ COMMITTED), so the
# stream version is read after the counter row's lock is held and sees every committed append;
# positions given back on a conflict keep the counter gap-free. The inbox row goes in under that
# lock, so it commits with the events or not at all; a duplicate fails the whole statement.
APPEND_HANDLED_FUNCTION = """
CREATE FUNCTION alchemiser_append_handled(
    p_stream_id text,
    p_expected_version integer,
    p_event_ids uuid[],
    p_event_types text[],
    p_schema_versions integer[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_account_ids text[],
    p_occurred_at timestamptz[],
    p_sources text[],
    p_payloads text[],
    p_bodies bytea[],
    p_recorded_at timestamptz,
    p_inbox_service text,
    p_inbox_event_id uuid,
    OUT o_first_position bigint,
    OUT o_stream_version integer
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_count integer := cardinality(p_event_ids);
BEGIN
    UPDATE event_positions SET last_position = last_position + v_count WHERE id = 1
        RETURNING last_position - v_count + 1 INTO o_first_position;
    SELECT coalesce(max(e.stream_version), 0) INTO o_stream_version
        FROM events AS e WHERE e.stream_id = p_stream_id;
    IF p_expected_version IS NOT NULL AND o_stream_version <> p_expected_version THEN
        UPDATE event_positions SET last_position = last_position - v_count WHERE id = 1;
        o_first_position := NULL;
        RETURN;
    END IF;
    INSERT INTO events (position, stream_id, stream_version, event_id, event_type,
                        schema_version, correlation_id, causation_id, account_id, occurred_at,
                        source, payload, recorded_at)
    SELECT o_first_position + i - 1, p_stream_id, o_stream_version + i, p_event_ids[i],
           p_event_types[i], p_schema_versions[i], p_correlation_ids[i], p_causation_ids[i],
           p_account_ids[i], p_occurred_at[i], p_sources[i], p_payloads[i]::jsonb, p_recorded_at
    FROM generate_subscripts(p_event_ids, 1) AS i;
    INSERT INTO outbox (event_id, routing_key, body, created_at)
    SELECT p_event_ids[i], p_event_types[i], p_bodies[i], p_recorded_at
    FROM generate_subscripts(p_event_ids, 1) AS i ORDER BY i;
    IF p_inbox_service IS NOT NULL THEN
        INSERT INTO inbox (service, event_id, processed_at)
        VALUES (p_inbox_service, p_inbox_event_id, p_recorded_at);
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_HANDLED_FUNCTION)
        op.execute("DROP FUNCTION alchemiser_append")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        first = import_module("shared.eventstore.migrations.versions.0001_event_store")
        op.execute(first.APPEND_FUNCTION)
        op.execute("DROP FUNCTION alchemiser_append_handled")
