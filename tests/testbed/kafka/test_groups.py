"""The group coordinator state machine, driven with a fake clock."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from testbed.kafka import errors
from testbed.kafka.groups import GroupCoordinator, GroupState, JoinResult, SyncResult


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[GroupCoordinator, Clock]:
    clock = Clock()
    ids = iter(range(1000))
    return GroupCoordinator(clock, lambda cid: f"{cid}-{next(ids)}"), clock


class Box:
    """Captures a deferred reply."""

    def __init__(self) -> None:
        self.value: Any = None

    def __call__(self, value: Any) -> None:
        assert self.value is None, "replied twice"
        self.value = value


def join(
    gc: GroupCoordinator,
    member_id: str = "",
    protos=(("range", b"m"),),
    v4=True,
    session=10_000,
    rebalance=20_000,
) -> Box:
    box = Box()
    gc.join("g", member_id, None, "c", "h", session, rebalance, "consumer", list(protos), v4, box)
    return box


def join_new(gc: GroupCoordinator) -> Box:
    """The v4+ two-step join: MEMBER_ID_REQUIRED, then join with the given id."""
    first = join(gc)
    assert first.value.error == errors.MEMBER_ID_REQUIRED
    return join(gc, first.value.member_id)


def sync(gc: GroupCoordinator, result: JoinResult, assignments=()) -> Box:
    box = Box()
    gc.sync("g", result.generation_id, result.member_id, list(assignments), box)
    return box


def test_single_member_joins_syncs_and_gets_its_assignment():
    gc, _ = make()
    a = join_new(gc).value
    assert a.error == errors.NONE and a.generation_id == 1 and a.leader == a.member_id
    assert a.members == ((a.member_id, None, b"m"),)
    s = sync(gc, a, [(a.member_id, b"A")]).value
    assert s == SyncResult(errors.NONE, "consumer", "range", b"A")
    assert gc.groups["g"].state is GroupState.STABLE
    assert gc.heartbeat("g", 1, a.member_id) == errors.NONE


def test_second_member_triggers_rebalance_and_both_get_assignments():
    gc, _ = make()
    a = join_new(gc).value
    sync(gc, a, [(a.member_id, b"all")])
    b_box = join_new(gc)
    assert b_box.value is None  # waits for the leader to rejoin
    assert gc.heartbeat("g", 1, a.member_id) == errors.REBALANCE_IN_PROGRESS
    a2 = join(gc, a.member_id).value
    b = b_box.value
    assert a2.generation_id == b.generation_id == 2
    assert a2.leader == a.member_id and len(a2.members) == 2 and b.members == ()
    b_sync = sync(gc, b)
    assert b_sync.value is None  # followers wait for the leader's assignment
    a_sync = sync(gc, a2, [(a.member_id, b"x"), (b.member_id, b"y")])
    assert a_sync.value.assignment == b"x" and b_sync.value.assignment == b"y"


def test_session_timeout_removes_member_and_rebalances():
    gc, clock = make()
    a = join_new(gc).value
    sync(gc, a, [(a.member_id, b"")])
    b_box = join_new(gc)
    a2 = join(gc, a.member_id).value
    b = b_box.value
    sync(gc, b)
    sync(gc, a2, [])
    clock.now += 5
    assert gc.heartbeat("g", 2, a.member_id) == errors.NONE
    clock.now += 6  # b silent for 11 s > 10 s session
    gc.tick(clock.now)
    assert b.member_id not in gc.groups["g"].members
    assert gc.heartbeat("g", 2, a.member_id) == errors.REBALANCE_IN_PROGRESS
    assert join(gc, a.member_id).value.generation_id == 3
    assert gc.heartbeat("g", 3, b.member_id) == errors.UNKNOWN_MEMBER_ID


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    gc, clock = make()
    a = join_new(gc).value
    sync(gc, a, [])
    b_box = join_new(gc)
    clock.now += 3
    gc.tick(clock.now)
    assert b_box.value is None
    clock.now += 18  # past a's 20 s rebalance timeout, a never rejoined
    gc.tick(clock.now)
    b = b_box.value
    assert b.error == errors.NONE and b.leader == b.member_id
    assert list(gc.groups["g"].members) == [b.member_id]


def test_leave_rebalances_and_last_leave_empties_group():
    gc, _ = make()
    a = join_new(gc).value
    sync(gc, a, [])
    assert gc.leave("g", [a.member_id]) == [errors.NONE]
    assert gc.groups["g"].state is GroupState.EMPTY
    assert gc.leave("g", ["nobody"]) == [errors.UNKNOWN_MEMBER_ID]


def test_errors_for_stale_generation_unknown_member_and_bad_protocols():
    gc, _ = make()
    a = join_new(gc).value
    assert gc.heartbeat("g", 0, a.member_id) == errors.ILLEGAL_GENERATION
    assert (
        sync(gc, JoinResult(0, 9, member_id=a.member_id)).value.error == errors.ILLEGAL_GENERATION
    )
    assert join(gc, "ghost").value.error == errors.UNKNOWN_MEMBER_ID
    assert join(gc, protos=(("other", b""),)).value.error == errors.INCONSISTENT_GROUP_PROTOCOL
    assert join(gc, session=10).value.error == errors.INVALID_SESSION_TIMEOUT


def test_v0_join_needs_no_member_id_round_trip_and_commit_rules():
    gc, _ = make()
    a = join(gc, v4=False).value
    assert a.error == errors.NONE and a.generation_id == 1
    assert gc.validate_commit("g", 1, a.member_id) == errors.REBALANCE_IN_PROGRESS
    sync(gc, a, [])
    assert gc.validate_commit("g", 1, a.member_id) == errors.NONE
    assert gc.validate_commit("g", 0, a.member_id) == errors.ILLEGAL_GENERATION
    assert gc.validate_commit("g", -1, "") == errors.UNKNOWN_MEMBER_ID
    assert gc.validate_commit("standalone", -1, "") == errors.NONE
    gc.commit("standalone", "t", 0, 42, 3, "meta")
    assert gc.committed("standalone", "t", 0) == (42, 3, "meta")


def test_members_joining_together_form_one_generation():
    """Both get MEMBER_ID_REQUIRED before either rejoins (a regression: the second
    rejoin was refused as INCONSISTENT_GROUP_PROTOCOL before the first rebalance)."""
    gc, _ = make()
    first_a, first_b = join(gc).value, join(gc).value
    a = join(gc, first_a.member_id)
    assert a.value is None  # waits for the other pending member
    b = join(gc, first_b.member_id)
    assert a.value.error == b.value.error == errors.NONE
    assert a.value.generation_id == b.value.generation_id == 1


_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["join", "join_new", "sync", "heartbeat", "leave", "tick"]),
        st.integers(0, 2),  # which client
        st.integers(0, 15),  # seconds to advance before acting
    ),
    max_size=40,
)


@given(_ACTIONS)
def test_any_sequence_keeps_invariants_and_answers_every_waiter(actions):
    """Random clients doing random things: the state stays coherent, no reply is
    sent twice (Box asserts that), and once time runs out every waiter is answered."""
    gc, clock = make()
    ids: dict[int, str] = {}
    gens: dict[int, int] = {}
    boxes: list[Box] = []
    for action, who, wait in actions:
        clock.now += wait
        mid = ids.get(who, "")
        if action in ("join", "join_new"):
            box = join(gc, "" if action == "join_new" else mid)
            boxes.append(box)
            if box.value is not None and box.value.member_id:
                ids[who] = box.value.member_id
                gens[who] = box.value.generation_id
        elif action == "sync":
            box = Box()
            gc.sync("g", gens.get(who, 0), mid, [(m, b"a") for m in ids.values()], box)
            boxes.append(box)
        elif action == "heartbeat":
            gc.heartbeat("g", gens.get(who, 0), mid)
        elif action == "leave":
            gc.leave("g", [mid])
        else:
            gc.tick(clock.now)
        group = gc.groups.get("g")
        if group is None:
            continue
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            assert group.leader in group.members
            assert all(m.join_reply is None for m in group.members.values())
        if group.state is GroupState.EMPTY:
            assert not group.members
        if group.state is GroupState.STABLE:
            assert all(m.sync_reply is None for m in group.members.values())
    for _ in range(3):
        clock.now += 10_000
        gc.tick(clock.now)
    assert all(box.value is not None for box in boxes), "a waiter was never answered"
