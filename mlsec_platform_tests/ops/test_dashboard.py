"""`mlsec dashboard`'s choices before it serves anything: who the viewer is, which broker, and
how Streamlit is started (the browser test, dashboard/test_app.py, serves it for real)."""

from __future__ import annotations

import pytest

from mlsec_platform.dashboard.data import TOKEN_ENV, VIEWER_ENV
from mlsec_platform.ops.dashboard import (
    APP,
    VIEWERS,
    NoViewer,
    broker_url,
    named_viewer,
    streamlit_command,
    viewer_environment,
)
from mlsec_platform.ops.refusals import UnknownName
from mlsec_platform.ops.services import record_service
from mlsec_platform.serving.client import CLIENT_CERT_ENV
from mlsec_platform.settings import PlatformSettings


def test_an_unknown_viewer_is_refused_with_the_known_ones():
    assert named_viewer(None) is None
    assert named_viewer("analyst-sp").project == "olist-sp"
    with pytest.raises(UnknownName, match="one of " + ", ".join(VIEWERS)):
        named_viewer("nobody")


def test_without_a_viewer_the_token_must_be_the_callers_own(tmp_path):
    settings = PlatformSettings(state_dir=tmp_path)
    no_token = {CLIENT_CERT_ENV: "me.pem"}
    with pytest.raises(NoViewer, match=TOKEN_ENV), viewer_environment(settings, None, no_token):
        pass
    own = {TOKEN_ENV: "a-token", CLIENT_CERT_ENV: "me.pem"}
    with viewer_environment(settings, None, own) as credentials:
        # The caller's token stays in the caller's environment; nothing new is issued.
        assert set(credentials) == {VIEWER_ENV}


def test_the_broker_is_the_running_one_else_the_default_port(tmp_path):
    settings = PlatformSettings(state_dir=tmp_path, broker_port=8480)
    assert broker_url(settings) == "https://127.0.0.1:8480"
    # A record whose process does not listen is no running broker.
    record_service(settings, "broker", "https://127.0.0.1:1", "127.0.0.1", 1)
    assert broker_url(settings) == "https://127.0.0.1:8480"


def test_streamlit_serves_the_page_headless_without_usage_statistics():
    command = streamlit_command("127.0.0.1", 8501)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)] and APP.is_file()
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options == {
        "--server.address": "127.0.0.1",
        "--server.port": "8501",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
    }
