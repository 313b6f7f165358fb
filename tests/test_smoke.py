from __future__ import annotations

import io
import zipfile


def test_server_streams_a_folder_as_zip(server):
    import httpx

    r = httpx.get(server.url + "/archive/docs.zip")
    assert r.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "docs/readme.txt" in names


def test_in_process_client_answers_health(client):
    assert client.get("/healthz").json() == {"status": "ok"}
