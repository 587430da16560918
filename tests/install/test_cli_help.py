"""zeek-mgmt's own command line: grouped help that imports nothing, two families of
commands that cannot be mistaken for each other, "did you mean", shell completion and the
man page. Every run is a real ``python -m mgmt`` child process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mgmt.cli import FAMILIES, FAMILY, SUBCOMMANDS
from tests.paths import REPO_ROOT


def zeek_mgmt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZEEK_", "_ARC"))}
    return subprocess.run(
        [sys.executable, "-m", "mgmt", *args],
        env={**clean, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def usage_error(*args: str) -> str:
    """Run ``zeek-mgmt args``, expect a usage error (exit 2): its last stderr line."""
    proc = zeek_mgmt(*args)
    assert proc.returncode == 2, proc
    return proc.stderr.splitlines()[-1]


def test_help_groups_commands_by_family_and_imports_none() -> None:
    """zeek-mgmt --help lists daemons, client commands and tools under their own headings,
    without importing any command's module (so it stays fast): only the entry point and
    mgmt.deferred, which it uses first thing."""
    code = (
        "import sys, contextlib\n"
        "from mgmt.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(sys.stderr):\n"
        "    main(['--help'])\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('mgmt.', 'client.')))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.split() == ["mgmt.cli", "mgmt.deferred"]
    lines = proc.stderr.splitlines()
    headings = [lines.index(f"{heading}:") for heading in FAMILIES.values()]
    assert headings == sorted(headings)
    for name, (_, help_text) in SUBCOMMANDS.items():
        index = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
        family = max((h, f) for f, h in zip(FAMILIES, headings, strict=True) if h < index)[1]
        assert FAMILY[name] == family and lines[index].endswith(help_text)
    assert not [line for line in lines if line.split()[:1] == ["show-settings"]]


def test_unknown_command_suggests_the_closest() -> None:
    """A mistyped command: exit 2 with the closest names, without a list of all."""
    proc = zeek_mgmt("staus")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "zeek-mgmt: error: unknown command 'staus' "
        "(did you mean 'status', 'netstats' or 'start'?); "
        "'zeek-mgmt --help' lists them\n"
    )
    assert zeek_mgmt("frobnicate").stderr == (
        "zeek-mgmt: error: unknown command 'frobnicate'; 'zeek-mgmt --help' lists them\n"
    )


def test_mistyped_option_and_choice_suggest_the_closest() -> None:
    """A mistyped option or choice of a command: exit 2, the command's usage and a hint."""
    assert usage_error("get-nodes", "--contoller", "h:1") == (
        "zeek-mgmt get-nodes: error: unrecognized arguments: --contoller h:1 "
        "(did you mean '--controller' or '--configfile'?)"
    )
    assert usage_error("daemon-settings", "agnet").endswith(
        "invalid choice: 'agnet' (choose from 'controller', 'agent', 'all') (did you mean 'agent'?)"
    )


def test_client_commands_refuse_the_daemons_settings_file_flag() -> None:
    """--config on a client command is not taken for --configfile: exit 2, both named."""
    assert usage_error("status", "--config", "/etc/zeek-mgmt.toml") == (
        "zeek-mgmt status: error: --config names the daemons' TOML settings file (zeek-mgmt "
        "run, controller, agent); client commands read a zeek-client config file: "
        "-c/--configfile FILE"
    )


@pytest.mark.parametrize("item", ["agent.zeek=/opt/zeek/bin/zeek", "controller.listen_port=1"])
def test_client_commands_refuse_daemon_settings(item: str) -> None:
    """--set with a daemon setting on a client command: exit 1 before connecting, saying
    where daemon settings go."""
    proc = zeek_mgmt("get-nodes", "--set", item)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"error: --set {item}: not a client setting; daemon settings go to zeek-mgmt run, "
        "controller or agent (see zeek-mgmt daemon-settings), client settings are listed "
        "by zeek-mgmt client-settings\n"
    )


def test_each_family_titles_its_options() -> None:
    """A daemon's help shows 'daemon settings' with --settings-file, a client command's
    'zeek-client options' with -c/--configfile; the old --config is not shown."""
    daemon = zeek_mgmt("run", "--help").stdout
    assert "\ndaemon settings (beat the settings file and the environment; " in daemon
    assert "--settings-file FILE" in daemon and "--config" not in daemon
    client = zeek_mgmt("get-nodes", "--help").stdout
    assert "\nzeek-client options (client settings; see zeek-mgmt client-settings):" in client
    assert "-c FILE, --configfile FILE" in client and "--settings-file" not in client


def test_former_names_still_work(tmp_path: Path) -> None:
    """show-settings and --config (the former names) give what daemon-settings and
    --settings-file give."""
    settings = tmp_path / "zeek-mgmt.toml"
    settings.write_text('[agent]\nname = "agent-x"\n')
    new = zeek_mgmt("daemon-settings", "agent", "--settings-file", str(settings))
    old = zeek_mgmt("show-settings", "agent", "--config", str(settings))
    assert new.returncode == old.returncode == 0, new.stderr
    assert new.stdout == old.stdout and 'name = "agent-x"' in new.stdout


def complete(line: str, tmp_path: Path) -> list[str]:
    """What bash completion offers for ``line`` (argcomplete's protocol)."""
    out = tmp_path / "completions"
    proc = zeek_mgmt(
        env={
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": "bash",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        }
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_text().split("\v")


def test_completion_of_commands_and_options(tmp_path: Path) -> None:
    """Completion offers command names (not the hidden former ones), a command's options
    and its choices."""
    assert complete("zeek-mgmt sta", tmp_path) == ["stage-config", "status", "start"]
    assert complete("zeek-mgmt sh", tmp_path) == [""]
    assert complete("zeek-mgmt get-nodes --con", tmp_path) == ["--configfile", "--controller"]
    assert complete("zeek-mgmt daemon-settings a", tmp_path) == ["agent", "all"]
    assert complete("zeek-mgmt completion z", tmp_path) == ["zsh "]  # complete: a space


@pytest.mark.parametrize(
    ("shell", "marker"), [("bash", "complete "), ("zsh", "#compdef zeek-mgmt")]
)
def test_completion_scripts(shell: str, marker: str) -> None:
    """zeek-mgmt completion bash|zsh prints shell code that completes zeek-mgmt."""
    proc = zeek_mgmt("completion", shell)
    assert proc.returncode == 0
    assert marker in proc.stdout and "zeek-mgmt" in proc.stdout


def test_bash_loads_the_completion_script(tmp_path: Path) -> None:
    """bash accepts the script and registers a completion for zeek-mgmt."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = tmp_path / "zeek-mgmt.bash"
    script.write_text(zeek_mgmt("completion", "bash").stdout)
    proc = subprocess.run(
        [bash, "--norc", "-c", f"source {script} && complete -p zeek-mgmt"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(" zeek-mgmt")


def test_man_page_documents_every_command(tmp_path: Path) -> None:
    """zeek-mgmt man writes a page with a section per command and its options, which
    groff formats without a warning."""
    page = tmp_path / "man1" / "zeek-mgmt.1"
    proc = zeek_mgmt("man", "-o", str(page))
    assert proc.returncode == 0 and proc.stdout == f"wrote {page}\n", proc.stderr
    text = page.read_text()
    assert text.startswith(".TH ZEEK\\-MGMT 1 ")
    for name in SUBCOMMANDS:
        assert f'.SS "zeek\\-mgmt {name.replace("-", chr(92) + "-")}"' in text, name
    assert '.SS "zeek\\-mgmt systemd install"' in text
    assert "\\fB\\-\\-settings\\-file\\fR \\fIFILE\\fR" in text
    assert "\\fB\\-c\\fR, \\fB\\-\\-configfile\\fR \\fIFILE\\fR" in text
    assert zeek_mgmt("man").stdout == text  # stdout by default, and deterministic
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed")
    proc = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-z", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
