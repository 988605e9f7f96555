"""``python -m monitoring``: the official sample's worker and client, plus a local scheduler and a demo.

Exit codes: 0 the job completed (or a control command was accepted); 1 the monitor ended Failed, Timeout
or Cancelled (or the orchestration failed), or a control command does not fit the monitor's state; 2 bad
arguments, bad configuration, an unreachable backend (nothing was scheduled) or an unknown instance id;
130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from azure.core.exceptions import ClientAuthenticationError

from monitoring.cli import batch, monitor, services
from monitoring.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    Parser,
    UsageError,
    configure_logging,
)
from monitoring.client.errors import LimitExceededError, UnknownInstanceError
from monitoring.core.payloads import InvalidRequestError
from monitoring.core.validation import printable
from monitoring.runtime.connection import BackendError, first_line
from monitoring.scheduler.server import SchedulerError
from monitoring.settings import SettingsError
from monitoring.web.sockets import PortInUseError


def build_parser() -> Parser:
    """The top-level parser; each command module declares its own commands next to their handlers."""
    parser = Parser(prog=PROG, description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    monitor.register(commands)
    batch.register(commands)
    services.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args, unknown = build_parser().parse_known_args(argv)
        if unknown:  # said by the command's own parser's words, pointing to the command's own --help
            raise UsageError(
                f"unrecognized arguments: {' '.join(unknown)} (see {PROG} {args.command} --help)"
            )
        if getattr(args, "log", False):
            configure_logging(getattr(args, "verbose", False))
        return args.handler(args)
    except (
        UsageError,
        InvalidRequestError,
        BackendError,
        SchedulerError,
        PortInUseError,
        UnknownInstanceError,
        SettingsError,
        LimitExceededError,
    ) as error:
        print(f"error: {printable(str(error), limit=1000)}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as error:
        details = printable(str(error.details()))  # type: ignore[attr-defined]
        print(f"error: the scheduler said {error.code().name}: {details}", file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_USAGE
    except ClientAuthenticationError as error:  # a token that expired mid-command, say
        print(f"error: Azure sign-in failed: {first_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
