"""Why a backtest cannot run as asked."""


class BacktestError(Exception):
    """One line naming the thing at fault (a file, an option, a symbol and a date) and the fix;
    the command prints it and exits 2 without writing anything."""
