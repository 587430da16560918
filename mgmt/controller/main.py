"""``zeek-mgmt controller``: run the controller daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from mgmt.broker.data import Port
from mgmt.controller.service import ControllerConfig, ControllerService
from mgmt.controller.state import ControllerOptions
from mgmt.exceptions import ConfigError, StateStoreError


def parse_port(value: str, source: str) -> int:
    """Accept Zeek's ``2149/tcp`` and a bare ``2149``.

    Raises:
        ConfigError: anything else, naming ``source``.
    """
    text = value.strip()
    if text.endswith("/tcp"):
        text = text[:-4]
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{source}: invalid port {value!r} (use e.g. 2149 or 2149/tcp)")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``zeek-mgmt controller``."""
    parser.add_argument(
        "--name", help="controller name (default: $ZEEK_CONTROLLER_NAME or controller-<hostname>)"
    )
    parser.add_argument("--state-dir", help="state directory ($ZEEK_MANAGEMENT_STATE_DIR)")
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="info")


def config_from_args(args: argparse.Namespace, env: dict[str, str]) -> ControllerConfig:
    """Build the daemon's configuration from flags and Zeek's environment variables."""
    name = args.name or env.get("ZEEK_CONTROLLER_NAME") or f"controller-{socket.gethostname()}"
    state = args.state_dir or env.get("ZEEK_MANAGEMENT_STATE_DIR") or "/var/lib/zeek-mgmt"
    agent_port = parse_port(env.get("ZEEK_CONTROLLER_PORT") or "2150", "ZEEK_CONTROLLER_PORT")
    client_port = parse_port(
        env.get("ZEEK_CONTROLLER_WEBSOCKET_PORT") or "2149", "ZEEK_CONTROLLER_WEBSOCKET_PORT"
    )
    return ControllerConfig(
        name=name,
        state_dir=Path(state),
        client_address=env.get("ZEEK_CONTROLLER_WEBSOCKET_ADDR") or "0.0.0.0",
        client_port=client_port,
        agent_address=env.get("ZEEK_CONTROLLER_ADDR") or "0.0.0.0",
        agent_port=agent_port,
        options=ControllerOptions(
            request_timeout=args.request_timeout, controller_port=Port(agent_port)
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args, dict(os.environ))
        service = ControllerService(config)
        service.load()
        asyncio.run(service.run(install_signals=True))
    except (ConfigError, StateStoreError) as exc:
        print(f"zeek-mgmt controller: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"zeek-mgmt controller: error: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
