"""Pure tests of mgmt.supervisor.policy: a fake clock, no processes, no event loop."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mgmt.exceptions import InvalidState
from mgmt.supervisor.policy import (
    SIGKILL,
    SIGTERM,
    TRANSITIONS,
    ExitStatus,
    NodePolicy,
    NodeSpec,
    PolicySettings,
    ProcessState,
    Signal,
    Spawn,
)
from tests.support.fake_clock import FakeClock

S = ProcessState
CRASH = ExitStatus(code=1)


#: Zeek's timing (behaviour.md §6.4): 26 s from the first SIGTERM to SIGKILL.
ZEEK = PolicySettings(stop_grace=26.0)


def running(settings: PolicySettings = ZEEK, pid: int = 100) -> tuple[NodePolicy, FakeClock]:
    clock = FakeClock()
    policy = NodePolicy("worker-01", settings)
    assert policy.start(clock.now) == [Spawn("start")]
    policy.on_spawned(pid, clock.now)
    policy.on_ready(clock.now)
    assert policy.state is S.RUNNING
    return policy, clock


def test_pure_module_imports_no_io() -> None:
    """Importing the policy pulls in neither asyncio, os-level I/O helpers nor psutil."""
    code = (
        "import sys, mgmt.supervisor.policy\n"
        "bad = {'asyncio', 'psutil', 'signal', 'subprocess', 'socket'} & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_start_ready_lifecycle() -> None:
    """start -> PENDING without pid, spawned -> pid, ready -> RUNNING."""
    clock = FakeClock()
    policy = NodePolicy("manager", ZEEK)
    assert policy.state is S.STOPPED
    assert policy.start(clock.now) == [Spawn("start")]
    assert (policy.state, policy.pid) == (S.PENDING, None)
    policy.on_spawned(42, clock.advance(0.01))
    assert (policy.state, policy.pid, policy.spawn_time) == (S.PENDING, 42, clock.now)
    policy.on_ready(clock.advance(0.5))
    assert policy.state is S.RUNNING
    assert policy.next_deadline() is None


def test_spawn_failure_is_failed_state() -> None:
    """A failed spawn makes the node FAILED with the reason, and it is not retried."""
    clock = FakeClock()
    policy = NodePolicy("manager", ZEEK)
    policy.start(clock.now)
    assert policy.on_spawn_failed("no such executable: /x", clock.now) == []
    assert (policy.state, policy.reason) == (S.FAILED, "no such executable: /x")
    assert policy.on_tick(clock.advance(100)) == []
    assert policy.next_deadline() is None
    # An explicit start tries again and clears the reason.
    assert policy.start(clock.now) == [Spawn("start")]
    assert (policy.state, policy.reason) == (S.PENDING, None)


# The revival back-off of Zeek's stem (behaviour.md §6.4): the delay each attempt waits
# for, counted from the previous spawn.
BACKOFF = [1, 1, 1, 2, 2, 2, 4, 4, 4, 8]


def test_revival_backoff_sequence() -> None:
    """Crashes right after each spawn are revived after 1,1,1,2,2,2,4,4,4,8 s."""
    policy, clock = running()
    for attempt, delay in enumerate(BACKOFF, start=1):
        # Crash immediately after the (re)spawn.
        assert policy.on_exit(CRASH, clock.now) == []
        assert policy.state is S.CRASHED
        assert policy.next_deadline() == pytest.approx(clock.now + delay)
        assert policy.on_tick(clock.advance(delay - 0.001)) == []
        assert policy.on_tick(clock.advance(0.001)) == [Spawn("revival")]
        assert (policy.state, policy.restarts, policy.revival_attempts) == (
            S.PENDING,
            attempt,
            attempt,
        )
        policy.on_spawned(1000 + attempt, clock.now)


def test_revival_delay_stops_growing_at_its_limit() -> None:
    """With max_revival_delay (zeek-mgmt run's children) the delay grows no further."""
    settings = PolicySettings(stop_grace=1.0, backoff_every=1, max_revival_delay=5.0)
    policy, clock = running(settings)
    delays = []
    for attempt in range(5):
        policy.on_exit(CRASH, clock.now)
        deadline = policy.next_deadline()
        assert deadline is not None
        delays.append(deadline - clock.now)
        assert policy.on_tick(clock.advance(delays[-1])) == [Spawn("revival")]
        policy.on_spawned(2000 + attempt, clock.now)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_revival_immediate_when_delay_already_passed() -> None:
    """A node that crashes after more than the delay is revived by the exit itself."""
    policy, clock = running()
    assert policy.on_exit(CRASH, clock.advance(5)) == [Spawn("revival")]
    assert policy.state is S.PENDING
    assert (policy.last_exit, policy.last_exit_time) == (CRASH, clock.now)


def test_backoff_resets_after_30s_up() -> None:
    """After 30 s of uptime the attempts and delay go back to 0 and 1 s."""
    policy, clock = running()
    for _ in range(4):  # four quick crashes: delay is now 2 s
        policy.on_exit(CRASH, clock.now)
        clock.advance(policy.revival_delay)
        assert policy.on_tick(clock.now) == [Spawn("revival")]
        policy.on_spawned(7, clock.now)
    assert (policy.revival_attempts, policy.revival_delay) == (4, 2.0)
    assert policy.next_deadline() == clock.now + 30
    policy.on_tick(clock.advance(29.9))
    assert policy.revival_attempts == 4
    policy.on_tick(clock.advance(0.1))
    assert (policy.revival_attempts, policy.revival_delay) == (0, 1.0)
    assert policy.next_deadline() is None
    # The total restart count is not part of the back-off.
    assert policy.restarts == 4


def test_backoff_resets_on_exit_without_tick() -> None:
    """A long-lived process resets the back-off when it exits even if no tick came."""
    policy, clock = running()
    for _ in range(3):
        policy.on_exit(CRASH, clock.now)
        clock.advance(policy.revival_delay)
        policy.on_tick(clock.now)
        policy.on_spawned(7, clock.now)
    assert policy.revival_delay == 2.0
    # Up 40 s, then crashes: revived with the initial delay (already passed) -> at once.
    assert policy.on_exit(CRASH, clock.advance(40)) == [Spawn("revival")]
    assert (policy.revival_attempts, policy.revival_delay) == (1, 1.0)


def test_max_restarts_gives_up() -> None:
    """With max_restarts=2 the third consecutive crash makes the node FAILED."""
    policy, clock = running(PolicySettings(stop_grace=26.0, max_restarts=2))
    for _ in range(2):
        policy.on_exit(CRASH, clock.now)
        assert policy.on_tick(clock.advance(1)) == [Spawn("revival")]
        policy.on_spawned(7, clock.now)
    assert policy.on_exit(ExitStatus(signal=11), clock.now) == []
    assert policy.state is S.FAILED
    assert policy.reason == "terminated by signal 11; gave up after 2 restarts"


@pytest.mark.parametrize(
    ("grace", "expected"),
    [
        # Zeek: 13 SIGTERMs 2 s apart, SIGKILL on the 14th attempt (~26 s).
        (26.0, [(2.0 * i, SIGTERM) for i in range(13)] + [(26.0, SIGKILL)]),
        (5.0, [(0.0, SIGTERM), (2.0, SIGTERM), (4.0, SIGTERM), (5.0, SIGKILL)]),
        (0.0, [(0.0, SIGTERM), (0.0, SIGKILL)]),
        (None, [(2.0 * i, SIGTERM) for i in range(20)]),
    ],
)
def test_stop_escalation(grace: float | None, expected: list[tuple[float, int]]) -> None:
    """Stopping sends SIGTERM every 2 s and SIGKILL once the grace period is over."""
    policy, clock = running(PolicySettings(stop_grace=grace))
    start = clock.now
    sent = [(0.0, a.sig) for a in policy.stop(start) if isinstance(a, Signal)]
    assert policy.state is S.STOPPING
    # Tick exactly at every deadline up to the horizon.
    horizon = expected[-1][0]
    while True:
        deadline = policy.next_deadline()
        assert deadline is not None
        if deadline - start > horizon:
            break
        for action in policy.on_tick(deadline):
            assert isinstance(action, Signal)
            sent.append((deadline - start, action.sig))
    assert sent == expected
    # The process dies: STOPPED, and never revived.
    policy.on_exit(ExitStatus(signal=sent[-1][1]), start + horizon + 0.1)
    assert policy.state is S.STOPPED
    assert policy.on_tick(start + 1000) == []
    assert policy.next_deadline() is None


def test_sigkill_repeats_while_process_lingers() -> None:
    """After SIGKILL the policy keeps sending SIGKILL every interval, never SIGTERM."""
    policy, clock = running(PolicySettings(stop_grace=1.0))
    policy.stop(clock.now)
    assert policy.on_tick(clock.advance(1.0)) == [Signal(SIGKILL)]
    assert policy.on_tick(clock.advance(1.0)) == []
    assert policy.on_tick(clock.advance(1.0)) == [Signal(SIGKILL)]


def test_stop_is_idempotent_and_final() -> None:
    """A second stop sends nothing more; an exit while stopping is not a crash."""
    policy, clock = running()
    assert policy.stop(clock.now) == [Signal(SIGTERM)]
    assert policy.stop(clock.advance(0.5)) == []
    assert policy.on_exit(ExitStatus(code=0), clock.advance(0.5)) == []
    assert policy.state is S.STOPPED
    assert policy.stop(clock.now) == []
    assert policy.restarts == 0


def test_stop_crashed_node_cancels_revival() -> None:
    """A CRASHED node that is stopped is STOPPED and never revived."""
    policy, clock = running()
    policy.on_exit(CRASH, clock.now)
    assert policy.stop(clock.now) == []
    assert policy.state is S.STOPPED
    assert policy.on_tick(clock.advance(10)) == []


def test_restart_running_node() -> None:
    """restart = SIGTERM, then a spawn as soon as the process exits; back-off resets."""
    policy, clock = running()
    policy.on_exit(CRASH, clock.now)
    policy.on_tick(clock.advance(1))
    policy.on_spawned(200, clock.now)
    policy.on_ready(clock.now)
    assert policy.revival_attempts == 1
    assert policy.restart(clock.now) == [Signal(SIGTERM)]
    assert policy.restart(clock.now) == []  # remembered, not repeated
    assert policy.restart_pending
    assert policy.on_exit(ExitStatus(signal=SIGTERM), clock.advance(0.2)) == [Spawn("restart")]
    assert (policy.state, policy.pid, policy.revival_attempts, policy.restarts) == (
        S.PENDING,
        None,
        0,
        0,
    )


def test_stop_cancels_pending_restart() -> None:
    """stop() while a restart is under way: the node ends STOPPED."""
    policy, clock = running()
    policy.restart(clock.now)
    policy.stop(clock.now)
    assert policy.on_exit(ExitStatus(code=0), clock.now) == []
    assert policy.state is S.STOPPED


@pytest.mark.parametrize("state", [S.STOPPED, S.CRASHED, S.FAILED])
def test_restart_without_process_starts(state: ProcessState) -> None:
    """restart of a node without a process is a plain start."""
    policy, clock = running()
    if state is S.STOPPED:
        policy.stop(clock.now)
        policy.on_exit(ExitStatus(code=0), clock.now)
    elif state is S.CRASHED:
        policy.on_exit(CRASH, clock.now)
    else:
        policy.restart(clock.now)
        policy.on_exit(ExitStatus(code=0), clock.now)
        policy.on_spawn_failed("gone", clock.now)
    assert policy.state is state
    assert policy.restart(clock.now) == [Spawn("start")]
    assert policy.state is S.PENDING


def test_adopt() -> None:
    """An adopted live process is RUNNING if ready, with its own spawn time."""
    clock = FakeClock()
    policy = NodePolicy("logger", ZEEK)
    assert policy.adopt(321, spawn_time=clock.now - 100, ready=True, now=clock.now) == []
    assert (policy.state, policy.pid, policy.spawn_time) == (S.RUNNING, 321, clock.now - 100)
    other = NodePolicy("manager", ZEEK)
    other.adopt(322, spawn_time=clock.now, ready=False, now=clock.now)
    assert other.state is S.PENDING
    with pytest.raises(InvalidState):
        other.adopt(323, spawn_time=clock.now, ready=False, now=clock.now)
    # An adopted process's exit status is unknown; it is revived like any crash.
    assert policy.on_exit(ExitStatus(), clock.now) == [Spawn("revival")]
    assert policy.last_exit == ExitStatus()


def test_illegal_inputs_raise_and_leave_state() -> None:
    """Misuse raises InvalidState and the state stays what it was."""
    clock = FakeClock()
    policy = NodePolicy("w", ZEEK)
    with pytest.raises(InvalidState):
        policy.on_exit(CRASH, clock.now)  # no process
    with pytest.raises(InvalidState):
        policy.on_ready(clock.now)
    with pytest.raises(InvalidState):
        policy.on_spawned(1, clock.now)  # no spawn was asked for
    assert policy.state is S.STOPPED
    policy.start(clock.now)
    with pytest.raises(InvalidState):
        policy.start(clock.now)
    with pytest.raises(InvalidState):
        policy.restart(clock.now)  # spawn in progress
    policy.on_spawned(5, clock.now)
    with pytest.raises(InvalidState):
        policy.on_spawned(6, clock.now)
    with pytest.raises(InvalidState):
        policy.start(clock.now)
    assert (policy.state, policy.pid) == (S.PENDING, 5)


def test_set_state_validates_against_table() -> None:
    """_set_state refuses every transition not in TRANSITIONS."""
    for source in ProcessState:
        for target in ProcessState:
            policy = NodePolicy("w", ZEEK)
            policy._state = source
            if target in TRANSITIONS[source]:
                policy._set_state(target)
                assert policy.state is target
            else:
                with pytest.raises(InvalidState, match="illegal transition"):
                    policy._set_state(target)
                assert policy.state is source


def test_late_ready_is_ignored_while_stopping() -> None:
    """A readiness observation that arrives during a stop changes nothing."""
    clock = FakeClock()
    policy = NodePolicy("w", ZEEK)
    policy.start(clock.now)
    policy.on_spawned(5, clock.now)
    policy.stop(clock.now)
    assert policy.on_ready(clock.now) == []
    assert policy.state is S.STOPPING


def test_stop_before_spawned() -> None:
    """Stopping a node whose spawn was not reported yet makes it STOPPED directly."""
    policy = NodePolicy("w", ZEEK)
    policy.start(0.0)
    assert policy.stop(0.0) == []
    assert policy.state is S.STOPPED


def test_exit_status_describe() -> None:
    """Exit statuses read like Zeek's messages."""
    assert ExitStatus.from_returncode(1).describe() == "exited with status 1"
    assert ExitStatus.from_returncode(-9).describe() == "terminated by signal 9"
    assert ExitStatus.from_returncode(-9) == ExitStatus(signal=9)
    assert ExitStatus().describe() == "exited (status unknown)"


def test_node_spec_values() -> None:
    """NodeSpec copies argv/env into immutable/owned values and rejects bad names."""
    env = {"A": "1"}
    spec = NodeSpec(name="w", argv=["zeek", "-i", "eth0"], env=env, cwd="/tmp/w")  # type: ignore[arg-type]
    env["A"] = "2"
    assert spec.argv == ("zeek", "-i", "eth0")
    assert spec.env == {"A": "1"}
    assert spec == NodeSpec(name="w", argv=("zeek", "-i", "eth0"), env={"A": "1"}, cwd="/tmp/w")
    for bad in ("", "a/b", ".bin"):
        with pytest.raises(ValueError):
            NodeSpec(name=bad, argv=("zeek",))
    with pytest.raises(ValueError):
        NodeSpec(name="w", argv=())


def test_changes_report_every_transition() -> None:
    """changes() lists each state passed through, with the pid of that moment, drained."""
    policy, clock = running(pid=100)
    assert [(c.state, c.pid) for c in policy.changes()] == [(S.PENDING, None), (S.RUNNING, 100)]
    assert policy.changes() == []
    policy.on_exit(CRASH, clock.advance(5))  # revived at once
    assert [(c.state, c.pid) for c in policy.changes()] == [(S.CRASHED, None), (S.PENDING, None)]
    adopted = NodePolicy("m", ZEEK)
    adopted.adopt(7, spawn_time=0.0, ready=True, now=1.0)
    assert [(c.state, c.pid) for c in adopted.changes()] == [(S.PENDING, 7), (S.RUNNING, 7)]
