"""Mailbox (latest wins / lossless) and AudioRing (timestamped, lock-free single writer)."""

import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearflow.engine.mailbox import Mailbox
from hearflow.engine.ring import AudioRing

RATE = 100  # a low rate keeps rings small (5 s = 500 samples) for property tests
CAP_SECONDS = 5.0


# --------------------------------------------------------------------------- Mailbox
def test_mailbox_latest_wins_and_counts_drops():
    mb = Mailbox()
    for i in range(5):
        assert mb.put(i)
    assert mb.put_count == 5 and mb.dropped == 4
    assert not mb.empty()
    assert mb.get(timeout=0) == 4
    assert mb.empty()
    assert mb.get(timeout=0.01) is None  # timeout
    mb.put("x")
    mb.close()
    assert mb.get() == "x"  # an item put before close is still handed out
    assert mb.get() is None  # closed and empty: immediately
    assert not mb.put("y")


def test_mailbox_get_waits_for_a_put():
    mb = Mailbox()
    threading.Timer(0.05, mb.put, args=("late",)).start()
    t0 = time.monotonic()
    assert mb.get(timeout=2) == "late"
    assert time.monotonic() - t0 < 1.5


def test_mailbox_lossless_blocks_until_taken_and_drops_nothing():
    mb = Mailbox(lossless=True)
    got = []

    def consumer():
        while True:
            item = mb.get(timeout=2)
            if item is None:
                return
            time.sleep(0.002)  # slower than the producer
            got.append(item)

    th = threading.Thread(target=consumer)
    th.start()
    for i in range(50):
        assert mb.put(i)
    while not mb.empty():
        time.sleep(0.001)
    mb.close()
    th.join(2)
    assert got == list(range(50))
    assert mb.dropped == 0 and mb.put_count == 50


def test_mailbox_lossless_put_wakes_on_close_and_times_out():
    mb = Mailbox(lossless=True)
    assert mb.put(1)
    assert not mb.put(2, timeout=0.02)  # slot still full
    result = []
    th = threading.Thread(target=lambda: result.append(mb.put(3)))
    th.start()
    time.sleep(0.05)
    assert th.is_alive()  # blocked on the full slot
    mb.close()
    th.join(1)
    assert not th.is_alive() and result == [False]


def test_mailbox_close_wakes_a_waiting_get():
    mb = Mailbox()
    result = []
    th = threading.Thread(target=lambda: result.append(mb.get()))
    th.start()
    time.sleep(0.05)
    mb.close()
    th.join(1)
    assert result == [None]


# --------------------------------------------------------------------------- AudioRing
def _expected(stream, t0, count, cap, t_end, n, rate=RATE):
    pos = (t_end - t0) * rate
    end = count if pos >= count else (int(round(pos)) if pos > 0 else 0)
    begin = max(end - min(n, cap), count - cap, 0)
    return stream[begin:max(begin, end)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(st.integers(0, 700), min_size=1, max_size=12),
    t0=st.floats(-5, 100, allow_nan=False),
    queries=st.lists(st.tuples(st.floats(-3, 20, allow_nan=False), st.integers(0, 800)), min_size=1, max_size=8),
)
def test_window_is_the_stream_tail_ending_at_t_end(blocks, t0, queries):
    ring = AudioRing(RATE, CAP_SECONDS)
    cap = ring.capacity
    stream = np.arange(sum(blocks), dtype=np.float32)
    pos = 0
    for i, b in enumerate(blocks):
        ring.write(stream[pos : pos + b], t0 if i == 0 else None)
        pos += b
        assert ring.available == min(pos, cap)  # capacity respected
    assert ring.written == pos
    assert ring.end_time == pytest.approx(t0 + pos / RATE)
    assert ring.start_time == pytest.approx(t0 + max(0, pos - cap) / RATE)
    for dt, n in queries:
        t_end = t0 + dt
        got, k = ring.window(t_end, n)
        want = _expected(stream, t0, pos, cap, t_end, n)
        assert k == len(got) == len(want) <= min(n, cap)
        np.testing.assert_array_equal(got, want)
        if k:  # never older than what the ring holds
            assert got[0] >= pos - cap


@settings(max_examples=60, deadline=None)
@given(blocks=st.lists(st.integers(1, 300), min_size=2, max_size=8), n=st.integers(1, 500))
def test_window_with_out_buffer_and_latest(blocks, n):
    ring = AudioRing(RATE, CAP_SECONDS)
    stream = np.arange(sum(blocks), dtype=np.float32)
    pos = 0
    for b in blocks:
        ring.write(stream[pos : pos + b])
        pos += b
    out = np.empty(n, np.float32)
    got, k = ring.window(ring.end_time, n, out=out)
    assert got.base is out or got is out or np.shares_memory(got, out)
    np.testing.assert_array_equal(got, stream[max(0, pos - min(n, ring.capacity)) :])
    latest, k2 = ring.latest(n)
    np.testing.assert_array_equal(latest, got)


def test_beyond_the_newest_sample_the_window_ends_there():
    ring = AudioRing(RATE, CAP_SECONDS)
    ring.write(np.arange(300, dtype=np.float32), t_media=10.0)  # 10.0 .. 13.0 s
    got, k = ring.window(14.0, 100)  # 1 s past the end: shifted, not shortened
    assert k == 100 and got[0] == 200 and got[-1] == 299
    got, k = ring.window(10.5, 100)  # warming up: only 50 samples exist before 10.5 s
    assert k == 50 and got[0] == 0 and got[-1] == 49
    assert ring.window(9.0, 100)[1] == 0  # before the first sample


def test_discontinuities_gap_fill_and_reset():
    ring = AudioRing(RATE, CAP_SECONDS)
    ring.write(np.ones(100, np.float32), t_media=0.0)
    ring.write(np.ones(10, np.float32), t_media=1.0)  # contiguous (== end_time)
    assert ring.end_time == pytest.approx(1.1) and ring.gap_samples == 0
    ring.write(np.full(10, 2.0, np.float32), t_media=1.5)  # 0.4 s gap: zeros in between
    assert ring.gap_samples == 40 and ring.end_time == pytest.approx(1.6)
    got, k = ring.window(1.6, 60)
    np.testing.assert_array_equal(got, np.r_[np.ones(10), np.zeros(40), np.full(10, 2.0)])
    ring.write(np.full(5, 3.0, np.float32), t_media=0.2)  # backwards: new timeline
    assert ring.resets == 1 and ring.available == 5 and ring.start_time == pytest.approx(0.2)
    ring.write(np.full(5, 4.0, np.float32), t_media=100.0)  # gap longer than the ring: reset
    assert ring.resets == 2 and ring.available == 5
    ring.reset(7.0)
    assert ring.available == 0 and ring.end_time == 7.0 and ring.window(8.0, 10)[1] == 0
    assert ring.written == 130


def test_retime_moves_the_timeline_and_keeps_samples():
    ring = AudioRing(RATE, CAP_SECONDS)
    ring.write(np.arange(200, dtype=np.float32), t_media=0.0)
    ring.retime(2.05)  # the device clock ran 50 ms slow
    assert ring.end_time == pytest.approx(2.05) and ring.available == 200
    got, k = ring.window(2.05, 5)
    np.testing.assert_array_equal(got, [195, 196, 197, 198, 199])


def test_a_block_longer_than_the_ring_keeps_its_tail():
    ring = AudioRing(RATE, CAP_SECONDS)
    x = np.arange(1234, dtype=np.float32)
    ring.write(x, t_media=1.0)
    got, k = ring.latest(10_000)
    assert k == ring.capacity
    np.testing.assert_array_equal(got, x[-ring.capacity :])
    assert ring.end_time == pytest.approx(1.0 + 12.34)


def test_ring_needs_five_seconds():
    with pytest.raises(ValueError):
        AudioRing(22050, 4.0)
    assert AudioRing(22050).seconds == pytest.approx(10.0)


def test_writes_do_not_allocate_a_new_buffer():
    ring = AudioRing(RATE, CAP_SECONDS)
    buf = ring._buf
    for _ in range(20):
        ring.write(np.arange(77, dtype=np.float64))  # converted in the copy
    assert ring._buf is buf and ring._buf.dtype == np.float32


def test_no_torn_windows_under_a_concurrent_writer():
    """A writer thread streams a ramp (value = sample index mod 2^24, exact in float32)
    while readers take windows as long as the ring, right at the edge being overwritten:
    every window must be contiguous and end where its timestamp says."""
    rate = 1000
    ring = AudioRing(rate, 5.0)
    cap = ring.capacity
    modulus = 1 << 24
    stop = threading.Event()
    problems = []
    reads = [0]

    def writer():
        idx = 0
        rng = np.random.default_rng(0)
        ring.write(np.zeros(0, np.float32), t_media=0.0)
        while not stop.is_set():
            b = int(rng.integers(1, 400))
            ring.write((np.arange(idx, idx + b) % modulus).astype(np.float32))
            idx += b

    def reader(n):
        while not stop.is_set():
            t_end = ring.end_time
            got, k = ring.window(t_end, n)
            reads[0] += 1
            if k < 2:
                continue
            d = np.diff(got.astype(np.int64)) % modulus
            if not np.all(d == 1):
                problems.append(("not contiguous", k))
            expected_last = (int(round(t_end * rate)) - 1) % modulus
            if int(got[-1]) != expected_last:
                problems.append(("wrong end", int(got[-1]), expected_last))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, to provoke overlaps
    try:
        threads = [threading.Thread(target=writer), threading.Thread(target=reader, args=(cap,)),
                   threading.Thread(target=reader, args=(cap // 3,))]
        for th in threads:
            th.start()
        time.sleep(1.0)
        stop.set()
        for th in threads:
            th.join(5)
    finally:
        sys.setswitchinterval(old)
    assert not problems, problems[:5]
    assert reads[0] > 50 and ring.written > 10 * cap
