"""The fair queue (``bot/engine/fairqueue.py``): one job per member per turn, newcomers first, turns kept while a
member has a job queued or running."""

from hypothesis import given
from hypothesis import strategies as st

from bot.engine.fairqueue import FairQueue


def test_round_robin_one_item_per_user_per_turn() -> None:
    queue: FairQueue[str, str] = FairQueue()
    for i in range(1, 4):
        queue.push("heavy", f"h{i}")
    queue.push("light", "l1")
    queue.push("third", "t1")
    queue.push("light", "l2")
    assert list(queue) == ["h1", "l1", "t1", "h2", "l2", "h3"]
    assert [queue.pop() for _ in range(len(queue))] == ["h1", "l1", "t1", "h2", "l2", "h3"]
    assert not queue


def test_a_newcomer_goes_before_members_who_had_a_turn() -> None:
    queue: FairQueue[str, str] = FairQueue()
    for i in range(1, 5):
        queue.push("heavy", f"h{i}")
    assert queue.pop() == "h1"  # heavy's first job starts on an idle bot
    queue.push("light", "l1")  # light arrives while h1 runs
    assert list(queue) == ["l1", "h2", "h3", "h4"]  # next, not after h2


def test_remove_and_count() -> None:
    queue: FairQueue[int, str] = FairQueue()
    queue.push(1, "a")
    queue.push(1, "b")
    queue.push(2, "c")
    assert queue.count(1) == 2
    assert queue.remove(1, "a")
    assert not queue.remove(1, "a")
    assert "a" not in list(queue)
    assert list(queue) == ["b", "c"]
    assert queue.drain() == ["b", "c"]
    assert len(queue) == 0


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=60), st.integers(min_value=0, max_value=59))
def test_iteration_order_is_the_pop_order_and_a_newcomer_waits_one_turn(users: list[int], cut: int) -> None:
    queue: FairQueue[int, tuple[int, int]] = FairQueue()
    for n, user in enumerate(users):
        queue.push(user, (user, n))
    for _ in range(min(cut, len(queue))):
        queue.pop()
    active = {user for user, _ in queue}
    queue.push(99, (99, -1))
    order = list(queue)
    assert [queue.pop() for _ in range(len(queue))] == order
    # a member with one job waits for at most one job of every other member with work queued
    assert order.index((99, -1)) <= len(active)


def test_a_running_job_counts_as_a_turn_when_more_are_queued_behind_it() -> None:
    """The idle-bot case: heavy's first job starts at once, *then* heavy queues more, then light one."""
    queue: FairQueue[str, str] = FairQueue()
    queue.push("heavy", "h1")
    assert queue.pop() == "h1"  # running; heavy has nothing queued now
    for i in range(2, 5):
        queue.push("heavy", f"h{i}")
    queue.push("light", "l1")
    assert list(queue) == ["l1", "h2", "h3", "h4"]
    queue.finished("heavy")  # h1 done
    assert queue.pop() == "l1"


def test_turns_are_forgotten_once_a_user_has_nothing_queued_or_running() -> None:
    queue: FairQueue[str, str] = FairQueue()
    queue.push("a", "a1")
    assert queue.pop() == "a1"
    queue.finished("a")  # a is idle again: a fresh start
    queue.push("b", "b1")
    queue.push("b", "b2")
    assert queue.pop() == "b1"
    queue.push("a", "a2")  # a has had no turn since coming back; b has had one
    assert list(queue) == ["a2", "b2"]
    queue.finished("b")
    queue.finished("unknown")  # harmless
