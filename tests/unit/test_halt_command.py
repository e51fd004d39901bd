"""`alchemiser halt` without a token: the embedded mode's user is pointed at `--local`."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.commands.halt import _post
from shared.service.auth import MissingApiTokenError
from shared.settings import Settings


@pytest.mark.parametrize("action", ["halt", "resume"])
def test_without_a_token_the_message_names_the_setting_and_the_local_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    monkeypatch.delenv("ALCHEMISER_API_TOKEN", raising=False)
    with pytest.raises(MissingApiTokenError) as refused:
        _post(Settings(data_dir=tmp_path), action, {}, url=None, timeout_s=1)
    assert str(refused.value).startswith("ALCHEMISER_API_TOKEN: not set")
    assert f"`alchemiser {action} --local`" in str(refused.value)
