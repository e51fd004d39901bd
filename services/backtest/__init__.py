"""The backtest: the live decision core run over history, its statistics and its report.

A composition root: it may call into every service's pure core, while no service imports it.
"""
