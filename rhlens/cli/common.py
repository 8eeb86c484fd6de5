"""What every ``rhlens`` subcommand shares: the progress option, the hint for making examples, and
the checks of ``--out`` before any work."""

import argparse
import sys
from pathlib import Path

GENERATE_HINT = "`rhlens generate mdqa realistic --n 40 --context-tokens 256 --out examples.jsonl`"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default once: argparse's ``(default: X)``, unless the help
    already says what the default is, the default is ``None`` (the help then says what ``None``
    means, or there is no default), or the option is a flag (off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.nargs == 0:
            return text
        return super()._get_help_string(action)


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``, and ``--threads`` (:mod:`rhlens.tools.threads`)."""
    from rhlens.tools.arguments import at_least

    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--threads", type=at_least(1), default=None, metavar="N",
                   help="CPU threads (default: the cores other processes leave free, at least 1)")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Check a pieces command's ``--out`` before any work: a folder we can write, new or empty
    unless ``--overwrite``."""
    from rhlens.tools.study.folder import check_writable

    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--out {out} is not empty; choose a new folder or pass --overwrite")
    check_writable(out)


def say_threads(args: argparse.Namespace) -> None:
    """Say (on stderr) how many threads the command ran or runs on (after its checks, so an error
    stays the only line on stderr)."""
    print(args.threads_note, file=sys.stderr)
