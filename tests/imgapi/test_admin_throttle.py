"""The login limits' sliding window, on a clock the test moves."""

from __future__ import annotations

from imgapi.admin.throttle import LoginLimits, SlidingWindow
from imgapi.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_admitted_up_to_the_limit_then_told_how_long_to_wait() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60, clock=clock)
    for step in range(3):
        assert window.wait("a") == 0
        window.hit("a")
        clock.now += 10 * step
    # Hits at 1000, 1000, 1010: the first leaves the window at 1060.
    assert window.wait("a") == 1060 - clock.now
    assert window.wait("b") == 0


def test_the_window_slides_one_hit_at_a_time() -> None:
    clock = Clock()
    window = SlidingWindow(2, 60, clock=clock)
    window.hit("a")
    clock.now += 30
    window.hit("a")
    clock.now += 30  # the first hit has left the window, the second has not
    assert window.wait("a") == 0
    window.hit("a")
    assert window.wait("a") == 30


def test_past_max_keys_the_oldest_keys_are_forgotten() -> None:
    clock = Clock()
    window = SlidingWindow(1, 60, max_keys=3, clock=clock)
    for key in "abcd":
        window.hit(key)
    assert window.wait("a") == 0  # forgotten
    assert all(window.wait(key) > 0 for key in "bcd")


def test_an_attempt_over_either_limit_is_refused_and_not_counted() -> None:
    limits = LoginLimits(
        Settings(admin_login_per_address=2, admin_login_per_account=3, admin_login_window=60)
    )
    assert limits.admit("10.0.0.1", "alice") == 0
    assert limits.admit("10.0.0.1", "bob") == 0
    assert limits.admit("10.0.0.1", "carol") == 60  # the address is spent
    assert limits.admit("10.0.0.2", "carol") == 0  # carol's refusal above did not count
    assert limits.admit("10.0.0.3", "alice") == 0
    assert limits.admit("10.0.0.4", "alice") == 0
    assert limits.admit("10.0.0.5", "alice") == 60  # alice is spent, from anywhere
