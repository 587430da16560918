"""Our client commands against the real zeek-client 1.5.0: same stdout, same exit code.

stderr is compared too where zeek-client's message is useful. Three error cases differ
on stderr by design (client/commands.py): nothing listening on the port (we say ``connection
refused`` at once), a TLS mix-up (zeek-client's message plus a hint; not covered here, see
test_client_errors.py) and a cluster file that cannot be read; their stdout and exit code
still match.

Both CLIs run as child processes against the same in-process controller (with a fake
agent, tests/support/fake_agent.py), one right after the other or side by side when the command
does not change the controller's state. Request and configuration ids (uuid1) differ
between runs and are normalised before comparing.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.support.cli import Run, ours, run_cmd, zeek_client
from tests.support.controller_harness import Cluster, running_cluster
from tests.support.ports import free_port
from tests.support.reference import CONFIGS, LOCAL_AGENT, config_files

ZC = zeek_client()
pytestmark = pytest.mark.skipif(ZC is None, reason="zeek-client 1.5.0 is not installed")

CONFIG_FILES = [p.name for p in config_files()]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

RICH_CONFIG = f"""\
# A configuration using every key zeek-client understands.
[instances]
{LOCAL_AGENT}

[manager]
instance = {LOCAL_AGENT}
role = manager
port = 2300
metrics_port = 9100

[logger-1]
instance = {LOCAL_AGENT}
role = Supervisor::LOGGER

[proxy-1]
instance = {LOCAL_AGENT}
type = proxy

[worker-01]
instance = {LOCAL_AGENT}
role = worker
interface = eth0
cpu_affinity = 3
scripts = site/b.zeek "site/with space.zeek" site/a.zeek
env = GREETING="hello world" ZEEK_DEBUG=1 EMPTY=
"""


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    return free_port()


def norm(text: str) -> str:
    """Replace uuids (request and configuration ids) by a placeholder."""
    return _UUID.sub("<uuid>", text)


def _zc_argv(cluster: Cluster | None, port: int | None, args: list[str], sets: list[str]) -> list:
    assert ZC is not None
    target = port if port is not None else (cluster.port if cluster else 0)
    opts = ["--controller", f"127.0.0.1:{target}"]
    for s in sets:
        opts += ["--set", s]
    return [ZC, *opts, *args]


def _our_argv(cluster: Cluster | None, port: int | None, args: list[str], sets: list[str]) -> list:
    target = port if port is not None else (cluster.port if cluster else 0)
    opts = ["--controller", f"127.0.0.1:{target}"]
    for s in sets:
        opts += ["--set", s]
    return ours(args[0], *args[1:], *opts)


async def both(
    cluster: Cluster | None,
    *args: str,
    concurrent: bool = False,
    sets: tuple[str, ...] = (),
    cwd: Path | None = None,
    port: int | None = None,
) -> tuple[Run, Run]:
    """Run zeek-client and our CLI with the same command; return (theirs, ours)."""
    theirs_argv = _zc_argv(cluster, port, list(args), list(sets))
    ours_argv = _our_argv(cluster, port, list(args), list(sets))
    if concurrent:
        theirs, mine = await asyncio.gather(
            run_cmd(theirs_argv, cwd=cwd), run_cmd(ours_argv, cwd=cwd)
        )
    else:
        theirs = await run_cmd(theirs_argv, cwd=cwd)
        mine = await run_cmd(ours_argv, cwd=cwd)
    return theirs, mine


def same(theirs: Run, mine: Run, *, stderr: bool = False) -> None:
    """Assert equal exit codes and (normalised) stdout, and optionally stderr."""
    assert mine.code == theirs.code, (theirs, mine)
    assert norm(mine.stdout) == norm(theirs.stdout), (theirs, mine)
    if stderr:
        assert norm(mine.stderr) == norm(theirs.stderr), (theirs, mine)


async def check(cluster: Cluster | None, *args: str, **kw: object) -> tuple[Run, Run]:
    """Run both, assert they agree on stdout and exit code; return the runs."""
    stderr = bool(kw.pop("stderr", False))
    theirs, mine = await both(cluster, *args, **kw)  # type: ignore[arg-type]
    same(theirs, mine, stderr=stderr)
    return theirs, mine


@pytest.mark.asyncio
async def test_no_controller_same_exit_clearer_error(unused_port: int) -> None:
    """With nothing listening both exit 1 with nothing on stdout; zeek-client says it timed
    out, we say the connection was refused and what to check (a deliberate difference)."""
    sets = ("client.peering_attempts=1", "client.peering_retry_delay_secs=0.1")
    theirs, mine = await check(None, "get-nodes", sets=sets, port=unused_port)
    assert theirs.code == 1 and theirs.stdout == ""
    assert theirs.stderr == (
        f"error: websocket connection to 127.0.0.1:{unused_port} timed out in connect()\n"
    )
    assert mine.stderr == (
        f"error: connection refused: no controller at 127.0.0.1:{unused_port} "
        "(is zeek-mgmt controller running? see --controller)\n"
    )


@pytest.mark.asyncio
async def test_one_peering_attempt_fails_in_handshake(tmp_path: Path) -> None:
    """peering_attempts=1 leaves no attempt for the ack: both fail 'in handshake'."""
    async with running_cluster(tmp_path) as cluster:
        theirs, _ = await check(
            cluster, "get-instances", sets=("client.peering_attempts=1",), stderr=True
        )
        assert "timed out in handshake" in theirs.stderr


@pytest.mark.asyncio
async def test_empty_controller(tmp_path: Path) -> None:
    """Without agents or configurations every command answers like zeek-client."""
    async with running_cluster(tmp_path, request_timeout=1.0) as cluster:
        runs = await asyncio.gather(
            check(cluster, "get-instances", concurrent=True),
            check(cluster, "get-nodes", concurrent=True),
            check(cluster, "get-config", concurrent=True, stderr=True),
            check(cluster, "get-config", "--deployed", concurrent=True, stderr=True),
            check(cluster, "deploy", concurrent=True),
            check(cluster, "get-id-value", "LogAscii::use_json", concurrent=True),
            check(cluster, "restart", concurrent=True),
            check(
                cluster,
                "test-timeout",
                concurrent=True,
                sets=("client.request_timeout_secs=1",),
                stderr=True,
            ),
            # One-line JSON when pretty printing is off.
            check(cluster, "get-nodes", concurrent=True, sets=("client.pretty_json=false",)),
        )
        assert runs[0][0].stdout == "{}\n"
        assert runs[1][0].code == 1 and "no instances connected" in runs[1][0].stdout
        assert runs[7][0].code == 1 and "timed out" in runs[7][0].stderr
        assert runs[8][0].stdout.count("\n") == 1


async def check_all(cluster: Cluster, *commands: tuple[str, ...]) -> list[tuple[Run, Run]]:
    """``check`` several commands that do not change the controller, all at once."""
    return await asyncio.gather(*(check(cluster, *c, concurrent=True) for c in commands))


@pytest.mark.asyncio
async def test_stage_config_reference_files(tmp_path: Path) -> None:
    """Every reference configuration, valid or not, stages with the same outcome."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent()
        # Staging answers do not depend on what was staged before: run them all at once.
        # Compare stderr too, except where zeek-client crashes with a traceback.
        runs = await asyncio.gather(
            *(
                check(
                    cluster,
                    "stage-config",
                    name,
                    cwd=CONFIGS,
                    concurrent=True,
                    stderr=name not in ("duplicate-section.cfg", "does-not-exist.cfg"),
                )
                for name in [*CONFIG_FILES, "does-not-exist.cfg"]
            )
        )
        # A missing file: same exit code and stdout; our message names the file and why.
        theirs, mine = runs[-1]
        assert theirs.stderr == "error: please provide a cluster configuration file.\n"
        assert mine.stderr == "error: cannot read does-not-exist.cfg: No such file or directory\n"
        await check(cluster, "stage-config", "cluster.cfg", cwd=CONFIGS)
        await asyncio.gather(
            check(cluster, "get-config", concurrent=True),
            check(cluster, "get-config", "--as-json", concurrent=True),
        )


@pytest.mark.asyncio
async def test_every_config_key_round_trips(tmp_path: Path) -> None:
    """A configuration with every key stages and reads back identically (INI, JSON)."""
    cfg = tmp_path / "rich.cfg"
    cfg.write_text(RICH_CONFIG)
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent()
        await check(cluster, "stage-config", str(cfg))
        await check_all(cluster, ("get-config",), ("get-config", "--staged", "--as-json"))
        await check(cluster, "deploy")
        runs = await check_all(
            cluster,
            ("get-config", "--deployed"),
            ("get-config", "--deployed", "--as-json"),
            ("get-nodes",),
        )
        assert 'env = EMPTY= GREETING="hello world" ZEEK_DEBUG=1' in runs[0][0].stdout
        assert 'scripts = site/a.zeek site/b.zeek "site/with space.zeek"' in runs[0][0].stdout


@pytest.mark.asyncio
async def test_deployment_lifecycle(tmp_path: Path) -> None:
    """Deploy, query, restart and redeploy: zeek-client and we print the same."""
    async with running_cluster(tmp_path, request_timeout=1.0) as cluster:
        await cluster.add_agent(bad_interfaces=frozenset({"not-a-valid-interface"}))
        cfg = str(CONFIGS / "cluster.cfg")
        await check(cluster, "stage-config", cfg)
        theirs, _ = await check(cluster, "deploy")
        assert '"worker-02"' in theirs.stdout
        runs = await check_all(
            cluster,
            ("get-instances",),
            ("get-nodes",),
            ("get-id-value", "LogAscii::use_json"),
            ("get-id-value", "Cluster::node", "manager", "logger"),
            ("get-id-value", "No::such_id"),
            ("get-id-value", "LogAscii::use_json", "nope"),
        )
        assert '"pid": 31337' in runs[1][0].stdout
        assert runs[4][0].code == 1 and "unknown id" in runs[4][0].stdout
        await check(cluster, "restart")
        await check(cluster, "restart", "manager")
        await check(cluster, "restart", "manager", "no-such-node")
        theirs, _ = await check(cluster, "restart", "no-such-node")
        assert theirs.code == 1
        await check(cluster, "get-nodes", concurrent=True)

        theirs, _ = await check(cluster, "deploy-config", str(CONFIGS / "bad-interface.cfg"))
        assert theirs.code == 1 and "pcap_error" in theirs.stdout
        await check_all(cluster, ("get-nodes",), ("get-id-value", "LogAscii::use_json"))
        await check(cluster, "deploy-config", cfg)
        await check(cluster, "deploy-config", str(CONFIGS / "dup-port.cfg"), stderr=True)
        theirs, _ = await check(cluster, "test-timeout", "--with-state", concurrent=True)
        assert theirs.code == 0 and "request timed out" in theirs.stdout


@pytest.mark.asyncio
async def test_stdin_config_and_output_file(tmp_path: Path) -> None:
    """``-`` reads the configuration from stdin; ``-f`` writes get-config to a file."""
    async with running_cluster(tmp_path) as cluster:
        await cluster.add_agent()
        text = (CONFIGS / "cluster.cfg").read_text()
        assert ZC is not None
        theirs = await run_cmd(
            [ZC, "--controller", f"127.0.0.1:{cluster.port}", "stage-config", "-"], stdin=text
        )
        mine = await run_cmd(
            ours("stage-config", "-", "--controller", f"127.0.0.1:{cluster.port}"), stdin=text
        )
        same(theirs, mine)
        a, b = tmp_path / "theirs.ini", tmp_path / "ours.ini"
        port = f"127.0.0.1:{cluster.port}"
        theirs = await run_cmd([ZC, "--controller", port, "get-config", "-f", str(a)])
        mine = await run_cmd(ours("get-config", "-f", str(b), "--controller", port))
        same(theirs, mine)
        assert theirs.stdout == ""
        assert a.read_text() == b.read_text() != ""
