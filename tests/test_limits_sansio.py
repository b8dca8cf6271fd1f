"""The per-connection limits without I/O: frame size, the token bucket, idleness."""

import pytest

from wsgate.limits import IdleWatch, Limits, RateVerdict, TokenBucket, over_size


def test_sizes_are_counted_in_utf8_bytes_for_text_and_as_is_for_bytes() -> None:
    assert not over_size({"type": "websocket.receive", "text": "a" * 10}, 10)
    assert over_size({"type": "websocket.receive", "text": "a" * 11}, 10)
    # Four characters, twelve bytes of UTF-8: over a ten-byte limit.
    assert over_size({"type": "websocket.receive", "text": "€€€€"}, 10)
    assert not over_size({"type": "websocket.receive", "bytes": b"x" * 10}, 10)
    assert over_size({"type": "websocket.receive", "bytes": b"x" * 11}, 10)
    assert not over_size({"type": "websocket.receive"}, 0)  # an empty frame


def test_no_bucket_without_a_rate() -> None:
    assert Limits(1024).bucket() is None
    bucket = Limits(1024, rate=3, per=1.0).bucket()
    assert isinstance(bucket, TokenBucket) and bucket.rate == 3


def test_the_bucket_starts_full_refills_over_time_and_warns_once_per_run() -> None:
    bucket = TokenBucket(rate=2, per=1.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [RateVerdict.PASS, RateVerdict.PASS]
    assert bucket.take(0.0) is RateVerdict.WARN  # the first frame over: tell the client
    assert bucket.take(0.1) is RateVerdict.DROP
    # Half a second refills one token (2 per second): the run of refusals ends.
    assert bucket.take(0.6) is RateVerdict.PASS
    assert bucket.take(0.6) is RateVerdict.WARN  # a new run warns again


def test_a_whole_bucket_of_refused_frames_in_a_row_closes() -> None:
    bucket = TokenBucket(rate=3, per=10.0)
    for _ in range(3):
        assert bucket.take(0.0) is RateVerdict.PASS
    verdicts = [bucket.take(0.0) for _ in range(4)]
    assert verdicts == [RateVerdict.WARN, RateVerdict.DROP, RateVerdict.DROP, RateVerdict.CLOSE]


@pytest.mark.parametrize("period", [0.25, 1.0])
def test_idle_is_counted_from_the_first_look_after_the_last_frame(period: float) -> None:
    watch = IdleWatch()
    received = 0
    assert not watch.idle(received, 0.0, 2.0)  # the first look starts the count
    received += 1  # a frame arrived
    assert not watch.idle(received, period, 2.0)
    now = period
    while now < period + 2.0 - 1e-9:
        assert not watch.idle(received, now, 2.0)
        now += period
    assert watch.idle(received, period + 2.0, 2.0)
