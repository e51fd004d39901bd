"""The Why page: from an order row or a position row to the decision path that put the symbol
in the target — the strategy service's own answer (`shared.why.explain`), read from the
recorded events."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.integration.web.test_pages import BEARER, sign_in


def test_an_order_row_links_to_its_decision_path_with_the_indicator_values(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, ids, _ = started
    sign_in(client)
    workflow = client.get(f"/workflows/{ids[0]}").text
    links = set(re.findall(r'class="why" href="([^"]+)"', workflow))
    assert f"/workflows/{ids[0]}/why/SPY" in links
    page = client.get(f"/workflows/{ids[0]}/why/SPY")
    assert page.status_code == 200
    assert re.search(r"<h1>Why (BUY|SELL|HOLD) SPY</h1>", page.text)
    assert "(&gt; (rsi SPY 10) 80)" in page.text and ">else</strong>" in page.text
    assert ">71.25<" in page.text  # the indicator's recorded value
    assert "TQQQ (selected)" in page.text and ">12.3456<" in page.text  # the filter's winner
    assert "1-KMLM" in page.text and "2-Nuclear" in page.text
    only = client.get(f"/workflows/{ids[0]}/why/TLT").text
    assert "2-Nuclear" in only and "1-KMLM" not in only  # only who selected it
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    answer = client.get(f"/api/workflows/{ids[0]}/why/spy", headers=BEARER).json()
    assert answer["symbol"] == "SPY" and answer["strategies"][0]["strategy"] == "1-KMLM"
    assert answer["strategies"][0]["decision_path"][0]["values"]["left"] == 71.25


def test_a_position_row_links_to_the_last_plans_why_and_an_unknown_workflow_is_404(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, _, _ = started
    sign_in(client)
    overview = client.get("/").text
    link = re.search(r'class="why" href="(/workflows/[^/]+/why/SPY)"', overview)
    assert link is not None
    assert "2-Nuclear" in client.get(link.group(1)).text
    assert client.get("/workflows/nope/why/SPY").status_code == 404
    assert client.get("/api/workflows/nope/why/SPY", headers=BEARER).status_code == 404
