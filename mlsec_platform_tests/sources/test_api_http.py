"""The shared HTTP layer of the API connectors, over replayed answers (no network, no sleeping)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import pytest

from mlsec_platform.sources.apis.errors import (
    ApiError,
    ApiRejected,
    ApiUnavailable,
    InsecureEndpoint,
)
from mlsec_platform.sources.apis.http import ApiClient, user_agent
from mlsec_platform.sources.apis.limits import (
    RateLimit,
    RetryPolicy,
    TokenBucket,
    parse_retry_after,
)
from mlsec_platform.sources.apis.redaction import redact_text, redact_url
from mlsec_platform_tests.sources.replay import FakeTime, Replay, failure, load, recording

BASE = "https://api.example.test"
CONNECTOR = ("test_connector", "9.9.9")
NOW = datetime(2024, 1, 10, 12, 0, 0, tzinfo=UTC)


def make(replay: Replay, fake: FakeTime, **kwargs) -> ApiClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0))
    return ApiClient(
        BASE,
        CONNECTOR,
        transport=replay.transport(),
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(7),  # noqa: S311 - deterministic jitter
        utcnow=lambda: NOW,
        **kwargs,
    )


def ok(path: str = "/x", body=None) -> dict:
    return recording(path, body={"ok": True} if body is None else body)


def at(rec: dict, path: str = "/x") -> dict:
    """A recorded answer served for any GET of ``path``."""
    return {**rec, "request": {"method": "GET", "url_path": path, "query": {}}}


# -- HTTPS only --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["http://api.example.test", "ftp://api.example.test", "api.example.test", ""]
)
def test_non_https_base_url_is_refused(url):
    with pytest.raises(InsecureEndpoint, match="only https://"):
        ApiClient(url, CONNECTOR)


def test_a_request_may_not_leave_the_https_host():
    fake = FakeTime()
    replay = Replay(ok())
    client = make(replay, fake)
    with pytest.raises(InsecureEndpoint):
        client.get("http://elsewhere.test/x")
    with pytest.raises(InsecureEndpoint):
        client.get("https://elsewhere.test/x")
    assert replay.requests == []


def test_user_agent_names_connector_and_version():
    replay = Replay(ok())
    make(replay, FakeTime()).get("/x")
    assert replay.requests[0].headers["User-Agent"] == user_agent(CONNECTOR)
    assert "test_connector/9.9.9" in user_agent(CONNECTOR)


# -- retries -----------------------------------------------------------------------------------
def test_503_then_success_is_retried_with_jittered_backoff():
    fake = FakeTime()
    replay = Replay(at(load("bcb_sgs_503.json")), at(load("bcb_sgs_503.json")), ok())
    response = make(replay, fake).get("/x")
    assert response.json() == {"ok": True}
    assert len(replay.requests) == 3
    # full jitter: uniform(0, min(max_delay, base * 2**(attempt-1)))
    assert len(fake.sleeps) == 2
    assert 0 <= fake.sleeps[0] <= 1.0
    assert 0 <= fake.sleeps[1] <= 2.0


def test_connect_error_and_timeout_are_retried():
    fake = FakeTime()
    replay = Replay(failure("/x", "ConnectError"), failure("/x", "ReadTimeout"), ok())
    assert make(replay, fake).get("/x").status_code == 200
    assert len(replay.requests) == 3


def test_backoff_is_capped():
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)  # noqa: S311
    delays = [policy.backoff(attempt, rng) for attempt in range(1, 10) for _ in range(50)]
    assert max(delays) <= 5.0
    assert min(delays) >= 0.0


def test_429_retry_after_seconds_is_honoured():
    fake = FakeTime()
    replay = Replay(recording("/x", status=429, headers={"Retry-After": "7"}), ok())
    make(replay, fake).get("/x")
    assert fake.sleeps == [7.0]


def test_retry_after_http_date_is_honoured_on_503():
    fake = FakeTime()
    when = "Wed, 10 Jan 2024 12:00:30 GMT"  # NOW + 30 s
    replay = Replay(recording("/x", status=503, headers={"Retry-After": when}), ok())
    make(replay, fake).get("/x")
    assert fake.sleeps == [30.0]


def test_retry_after_is_capped():
    fake = FakeTime()
    replay = Replay(recording("/x", status=429, headers={"Retry-After": "86400"}), ok())
    retry = RetryPolicy(max_attempts=3, max_retry_after=60.0)
    make(replay, fake, retry=retry).get("/x")
    assert fake.sleeps == [60.0]


def test_unparseable_retry_after_falls_back_to_backoff():
    fake = FakeTime()
    replay = Replay(recording("/x", status=429, headers={"Retry-After": "soon"}), ok())
    make(replay, fake).get("/x")
    assert len(fake.sleeps) == 1 and 0 <= fake.sleeps[0] <= 1.0


def test_parse_retry_after():
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Wed, 10 Jan 2024 12:01:00 GMT", NOW) == 60.0
    assert parse_retry_after("Wed, 10 Jan 2024 11:00:00 GMT", NOW) == 0.0  # in the past
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("-5", NOW) is None
    assert parse_retry_after("garbage", NOW) is None


def test_retries_exhausted_raise_api_unavailable():
    fake = FakeTime()
    replay = Replay(recording("/x", status=502, body="bad gateway"))
    with pytest.raises(ApiUnavailable) as caught:
        make(replay, fake, retry=RetryPolicy(max_attempts=3)).get("/x")
    assert len(replay.requests) == 3
    assert len(fake.sleeps) == 2  # no sleep after the last attempt
    assert caught.value.attempts == 3
    assert caught.value.status == 502
    assert "HTTP 502" in str(caught.value)


def test_transport_errors_exhausted_raise_api_unavailable():
    fake = FakeTime()
    replay = Replay(failure("/x", "ConnectError"))
    with pytest.raises(ApiUnavailable, match="ConnectError") as caught:
        make(replay, fake, retry=RetryPolicy(max_attempts=2)).get("/x")
    assert caught.value.status is None
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_401_is_rejected_without_retry():
    fake = FakeTime()
    replay = Replay(at(load("openweather_401.json")))
    with pytest.raises(ApiRejected, match="HTTP 401") as caught:
        make(replay, fake).get("/x")
    assert caught.value.status == 401
    assert len(replay.requests) == 1
    assert fake.sleeps == []


def test_allowed_status_is_returned_to_the_caller():
    replay = Replay(recording("/x", status=404, body={"cod": "404"}))
    response = make(replay, FakeTime()).get("/x", allow_status={404})
    assert response.status_code == 404


def test_redirects_are_not_followed():
    replay = Replay(recording("/x", status=302, headers={"Location": "http://evil.test/"}))
    with pytest.raises(ApiError, match="unexpected HTTP 302"):
        make(replay, FakeTime()).get("/x")
    assert len(replay.requests) == 1


# -- rate limit --------------------------------------------------------------------------------
def test_token_bucket_spaces_calls_with_a_fake_clock():
    fake = FakeTime(start=0.0)
    bucket = TokenBucket(60, 60.0, clock=fake.clock, sleep=fake.sleep)
    times = []
    for _ in range(5):
        bucket.acquire()
        times.append(fake.now)
    assert times == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])


def test_token_bucket_never_exceeds_the_limit_in_any_period():
    fake = FakeTime(start=0.0)
    bucket = TokenBucket(10, 60.0, clock=fake.clock, sleep=fake.sleep)
    times = []
    for _ in range(50):
        bucket.acquire()
        times.append(fake.now)
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + 60.0 - 1e-6]
        assert len(in_window) <= 10
    assert times[-1] == pytest.approx(49 * 6.0)


def test_token_bucket_does_not_wait_when_calls_are_slow_enough():
    fake = FakeTime(start=0.0)
    bucket = TokenBucket(2, 1.0, burst=2, clock=fake.clock, sleep=fake.sleep)
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == 0.0
    fake.now += 5.0
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.5)


def test_client_applies_the_rate_limit_to_every_attempt():
    fake = FakeTime(start=0.0)
    replay = Replay(recording("/x", status=503), ok())
    client = make(
        replay,
        fake,
        rate_limit=RateLimit(calls=2, period=10.0),
        retry=RetryPolicy(max_attempts=3, base_delay=0.0),
    )
    client.get("/x")  # 503 (retry with zero backoff) then 200: the retry waits for a token
    client.get("/x")
    assert fake.sleeps == pytest.approx([0.0, 5.0, 5.0])


def test_invalid_rate_limits_are_refused():
    with pytest.raises(ValueError):
        TokenBucket(0, 60.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- redaction ---------------------------------------------------------------------------------
def test_redact_url():
    url = "https://api.example.test/data?q=S%C3%A3o+Paulo%2CBR&appid=abc123&units=metric"
    assert redact_url(url) == (
        "https://api.example.test/data?q=S%C3%A3o+Paulo%2CBR&appid=***&units=metric"
    )
    assert (
        redact_url("https://u:p@h.test/?APIKEY=1&token=2")
        == "https://***@h.test/?APIKEY=***&token=***"
    )


def test_redact_text_removes_known_secrets_in_every_form():
    secret = "a b/c+d"
    text = "echo a b/c+d and a%20b%2Fc%2Bd and a+b%2Fc%2Bd"
    assert secret not in redact_text(text, [secret])
    assert "a%20b%2Fc%2Bd" not in redact_text(text, [secret])
    assert "a+b%2Fc%2Bd" not in redact_text(text, [secret])


def test_requests_are_logged_with_method_redacted_url_status_and_attempt(caplog):
    caplog.set_level(logging.DEBUG)
    replay = Replay(recording("/x", status=500), ok())
    make(replay, FakeTime()).get("/x", {"appid": "s3cr3t-value", "units": "metric"})
    ours = [r.getMessage() for r in caplog.records if r.name == "mlsec.connectors"]
    assert any("GET" in m and "appid=***" in m and "HTTP 500" in m and "1/4" in m for m in ours)
    assert any("HTTP 200" in m and "2/4" in m for m in ours)
    assert all("s3cr3t-value" not in r.getMessage() for r in caplog.records)
    # httpx's own request line is redacted too
    assert any(r.name == "httpx" and "appid=***" in r.getMessage() for r in caplog.records)
    assert replay.params()["appid"] == "s3cr3t-value"


def test_repr_does_not_show_credentials():
    client = ApiClient("https://user:pw@api.example.test", CONNECTOR)
    assert "pw" not in repr(client)
    client.close()
