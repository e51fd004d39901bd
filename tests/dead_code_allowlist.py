"""Names vulture reports as unused that are kept on purpose, each with the reason (`make lint`
runs vulture at 60 % confidence over `shared` and `services` with this file; see the
`[tool.vulture]` table in pyproject.toml for what frameworks call and is ignored by rule).

Vulture counts a name as used when it appears anywhere in the files it reads, so listing a name
here keeps every definition of it; keep the list short and the reasons true."""

# ruff: noqa: B018, F821

# Fields of recorded events and of the bar-store manifest: written for the record (the event
# store is the system of record and `alchemiser events` prints them), read back as JSON by the
# report, the audit and replay rather than by attribute.
broker_code
deltas
error_details
execution_plan_id
execution_timestamp
filled_at
format_version
idempotency_key
original_event_id
original_event_type
shared_signal_id
stale_orders_cancelled
strategy_count
strategy_name
terminal_state
workflow_duration_ms
written_at

# Values of the broker's and the settings' vocabularies: a foreign open order may have these
# order types, and `ALCHEMISER_ALPACA_DATA_FEED=sip` selects the paid feed.
STOP
STOP_LIMIT
TRAILING_STOP
SIP

# Read by the report's Jinja templates.
order_activity

# alpaca-py's REST client reads these attributes; the adapter sets them to turn its own retries
# off and bound each request's time.
_._retry
_._session

# The trade ledger (services/projections.py): kept, with its end-to-end test, as the base of the
# P&L projection and the dashboard (docs/architecture.md, Durable waits and read models).
_.rebuild
_.traded_by_strategy

# Test doubles and inspection points that live beside the adapters they mirror: the in-memory
# market data passes the same contract suite as the bar store; the contract suites read the dead
# letters of both buses and inject submission faults and quote shapes into the simulated world;
# the fault-test launcher installs its injector; tests build bar snapshots from closes.
InMemoryMarketData
_.dead_letters
_.fail_next_submissions
WIDE
install
_.from_closes

# Recorded quotes name their source; every adapter answers with its REST quote today, and a
# recorded `stream` quote still reads back.
STREAM

# Drives the embedded system session by session on the simulated clock: the backtest's proof
# that it trades as the live system would (tests/chaos/test_backtest_equals_live.py).
run_sessions

# Fields of the HTTP API's response models (services/strategy/api_views.py): FastAPI reads them to
# validate each answer and to type it in the OpenAPI schema; the handlers fill them from dicts.
next_window
allocation_weight
contribution
decision_path
plan_item
causation

# Fields of the kill switch's HTTP answers (`POST /v1/halt`, `POST /v1/resume`), read as JSON
# by `alchemiser halt` and `alchemiser resume`, not by attribute.
halted_since
resumed_at

# The web's strategy outline (services/web/outline.py): `forms` is read by the template; the
# report policy's parser overrides html.parser.HTMLParser's callbacks, which the parser calls.
forms
handle_starttag
handle_data
handle_endtag
