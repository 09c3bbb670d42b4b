"""Retry schedule and rate limiting: the pure parts of sending."""

from __future__ import annotations

from newsletter.domain.delivery import backoff_delay
from newsletter.infra.transports.sendgrid import _retry_after


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    low = [backoff_delay(n, jitter=lambda: 0.0) for n in range(1, 6)]
    high = [backoff_delay(n, jitter=lambda: 1.0) for n in range(1, 6)]
    assert low == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert high == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert backoff_delay(40, jitter=lambda: 1.0) == 600.0


def test_backoff_never_sooner_than_the_server_asked():
    assert backoff_delay(1, retry_after=30, jitter=lambda: 0.5) == 30


def test_retry_after_and_rate_limit_reset_headers():
    import time

    assert _retry_after({"Retry-After": "7"}) == 7.0
    reset = str(int(time.time()) + 20)
    assert 18 <= _retry_after({"X-RateLimit-Reset": reset}) <= 20
    assert _retry_after({}) is None


def test_token_bucket_grants_what_it_has_and_takes_back_the_rest():
    from newsletter.services.throttle import TokenBucket

    unlimited = TokenBucket(None)
    assert unlimited.take_up_to(500) == 500
    bucket = TokenBucket(rate=10)  # a burst of one second: 10 tokens
    assert bucket.take_up_to(100) == 10
    bucket.give_back(4)
    assert bucket.take_up_to(100) == 4
