"""Which clients get the HTML error page: those that prefer text/html."""

from __future__ import annotations

import pytest

from zipserve.core.headers import prefers_html


@pytest.mark.parametrize("accept,html", [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Chromium
    ("text/html", True),
    ("*/*", False),  # curl
    ("", False),
    ("application/json", False),
    ("application/json, text/html;q=0.1", False),
    ("text/html;q=0.9, application/json;q=0.5", True),
    ("text/html;q=0", False),
    ("text/html;q=abc", False),
])
def test_html_error_pages_go_to_clients_that_prefer_html(accept, html):
    assert prefers_html(accept) is html


def test_json_name_with_a_lone_surrogate_is_a_400_not_a_500(client):
    body = b'{"paths": ["docs"], "name": "\\ud800"}'  # valid JSON, not valid text
    r = client.post("/archive", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"
