"""Bars, the bar store, the synthetic sample and the market-data port."""
