"""The commands' absl flag parsing, whose errors (a value of the wrong type, an unknown flag) are one line with a fix.

absl's own `app.parse_flags_with_usage` prints "FATAL Flags parsing error: ..." and a second line; the commands
(experiments' scripts, data_utils' check and download, the benchmarks) give its errors in this module's one-line
form. It imports nothing from the project and not JAX, so that a command parses its flags (and prints --help)
before anything heavy loads.
"""

from __future__ import annotations

import functools
import re
import sys

from absl import app, flags


def parse_flags(argv: list[str], flags_hint: str = "", positional: bool = True) -> list[str]:
  """`flags.FLAGS(argv)`; a flag absl cannot parse exits 1 with `error: <why>. Fix: <what to give>`.

  flags_hint: appended to the fix for an unknown flag (e.g. how config fields are given).
  positional: False for a command that takes none, so that `train.py douban` (for --dataset=douban) is refused
    rather than ignored.
  """
  try:
    rest = flags.FLAGS(argv)
    if not positional and len(rest) > 1:
      sys.exit(
          f"error: unexpected argument(s) {' '.join(rest[1:])!r}: this command takes flags only. "
          f"Fix: give each as --name=value (--help lists them{flags_hint})"
      )
    return rest
  except flags.UnrecognizedFlagError as e:
    why = str(e).replace(" ?", "?").rstrip(". ")  # absl's "Did you mean: seeds ?"
    sys.exit(f"error: {why}{' ' if why.endswith('?') else '. '}Fix: use a flag that --help lists{flags_hint}")
  except flags.Error as e:  # a value of the wrong type or outside an enum, a missing value or required flag
    required = re.match(r"flag --(\w+)=None: Flag --\w+ must have a value other than None", str(e))
    if required:  # absl's words for a required flag left out
      bare = [a for a in argv[1:] if not a.startswith("-")]
      hint = f" ({bare[0]!r} alone is not a flag: write --{required[1]}={bare[0]})" if bare else ""
      sys.exit(f"error: --{required[1]} is required{hint}. Fix: give --{required[1]}=<value> (--help lists the values)")
    sys.exit(f"error: {str(e).rstrip('. ')}. Fix: give the flag a value of its type (--help lists the flags)")


def one_line_usage_errors(main):
  """`main` whose `app.UsageError` is one line on stderr (`error: <message>`), exit code 1.

  absl prints the script's whole --help before such a message, which buries the one line that says
  what to fix; --help still prints it.
  """

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      sys.exit(f"error: {e}")

  return wrapped
