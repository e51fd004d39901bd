"""The simulated broker builds its records from rows by position
(shared/broker/simulated/book.py), so each record lists its table's columns in their order."""

from __future__ import annotations

from dataclasses import fields

from shared.broker.simulated.ledger import StoredOrder, StoredPosition
from shared.broker.simulated.tables import sim_orders, sim_positions


def test_a_stored_order_lists_the_order_columns_in_the_tables_order() -> None:
    assert [field.name for field in fields(StoredOrder)] == list(sim_orders.c.keys())


def test_a_stored_position_lists_the_position_columns_in_the_tables_order() -> None:
    assert [field.name for field in fields(StoredPosition)] == list(sim_positions.c.keys())
