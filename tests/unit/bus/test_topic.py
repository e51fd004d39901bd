"""Topic matching as RabbitMQ's topic exchange does it, so embedded mode routes like production."""

from __future__ import annotations

import pytest

from shared.bus.topic import topic_matches


@pytest.mark.parametrize(
    ("pattern", "routing_key", "matches"),
    [
        ("OrderFilled", "OrderFilled", True),
        ("OrderFilled", "OrderFilledLate", False),
        ("#", "OrderFilled", True),
        ("#", "orders.us.filled", True),
        ("*", "OrderFilled", True),
        ("*", "orders.filled", False),
        ("orders.*", "orders.filled", True),
        ("orders.*", "orders", False),
        ("orders.#", "orders", True),
        ("orders.#.filled", "orders.us.nyse.filled", True),
        ("orders.#.filled", "orders.us.cancelled", False),
        ("*.filled", "orders.filled", True),
    ],
)
def test_topic_pattern_matching_follows_amqp_rules(
    pattern: str, routing_key: str, matches: bool
) -> None:
    assert topic_matches(pattern, routing_key) is matches
