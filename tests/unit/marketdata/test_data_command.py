"""`alchemiser data import` and `alchemiser data sample` as a user runs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.commands.data import data_app
from services.commands.failures import run_command
from shared.marketdata.barstore import BarStore
from tests.cli import run_alchemiser

HEADER = "date,symbol,open,high,low,close,volume\n"


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALCHEMISER_SIM_NOW", raising=False)
    monkeypatch.setenv("ALCHEMISER_DATA_DIR", str(tmp_path / "data"))


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """`alchemiser data ARGS` in this process, through the entry point's failure handling."""

    def run_data(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            run_command(lambda: data_app(list(args), prog_name="data"))
        captured = capsys.readouterr()
        return int(exited.value.code or 0), captured.out, captured.err

    return run_data


def test_import_writes_the_store_of_the_configured_data_dir(tmp_path: Path, run: Run) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(HEADER + "2024-01-02,SPY,1,1,1,100,10\n2024-01-03,SPY,1,1,1,101,10\n")
    code, out, _ = run("import", str(csv))
    assert code == 0
    assert "1 symbols, 2 sessions 2024-01-02 to 2024-01-03" in out
    assert BarStore(tmp_path / "data").load().closes["SPY"].tolist() == [100.0, 101.0]


def test_import_of_a_bad_close_prints_one_line_naming_file_line_and_column(
    tmp_path: Path, run: Run
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(HEADER + "2024-01-02,SPY,1,1,1,100,10\n2024-01-03,SPY,1,1,1,-5,10\n")
    code, _, err = run("import", str(csv))
    assert code == 1
    assert err.count("\n") == 1
    assert f"{csv}:3: column 'close': close of SPY on 2024-01-03 is -5.0" in err


def test_import_of_a_file_without_a_close_column_names_it(tmp_path: Path, run: Run) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("date,symbol,open,high,low,volume\n2024-01-02,SPY,1,1,1,10\n")
    code, _, err = run("import", str(csv))
    assert code == 1
    assert "missing column 'close'" in err


def test_a_bad_setting_stops_with_its_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_alchemiser(
        tmp_path, "data", "import", tmp_path / "bars.csv", settings={"ALCHEMISER_LOG_LEVEL": "LOUD"}
    )
    assert result.returncode == 2
    assert result.stderr.startswith("alchemiser: ALCHEMISER_LOG_LEVEL:")
    assert result.stderr.strip().count("\n") == 0


def test_sample_creates_then_keeps_a_labelled_synthetic_store(tmp_path: Path, run: Run) -> None:
    data_dir = tmp_path / "elsewhere"
    code, out, _ = run("sample", "--data-dir", str(data_dir), "--end", "2024-07-03")
    assert code == 0
    assert out.startswith(f"created {data_dir / 'bars'}: ")
    assert " 1600 sessions " in out
    assert "to 2024-07-03 (SYNTHETIC sample, not real prices)" in out
    manifest = BarStore(data_dir).manifest()
    assert manifest.synthetic
    assert "SPY" in manifest.symbols
    code, out, _ = run("sample", "--data-dir", str(data_dir), "--end", "2024-07-03T12:00")
    assert (code, out.split()[0]) == (0, "unchanged")


def test_sample_refuses_to_replace_imported_bars(tmp_path: Path, run: Run) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(HEADER + "2024-01-02,SPY,1,1,1,100,10\n")
    assert run("import", str(csv))[0] == 0
    code, _, err = run("sample", "--end", "2024-07-03")
    assert code == 1
    assert "holds imported bars" in err


def test_sample_rejects_an_unreadable_end(tmp_path: Path, run: Run) -> None:
    code, _, err = run("sample", "--end", "July 3rd")
    assert code == 2
    assert "--end 'July 3rd': expected a date YYYY-MM-DD" in err
