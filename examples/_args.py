"""The command line the examples share: ``--smoke`` (or ``JEBM_SMOKE=1``) for tiny sizes, plus
each script's own sizes.

A script calls ``example_parser(__doc__, num_steps=1000).parse_args(argv)``: the first line of
its docstring is the description, and each keyword is a flag (``--num-steps``) whose type is
that of its default. Copying one example elsewhere? Copy this file beside it.
"""

import argparse
import os


def example_parser(doc: str, **defaults) -> argparse.ArgumentParser:
    """The parser of an example: ``--smoke`` and one flag per keyword of ``defaults``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        default=os.environ.get("JEBM_SMOKE") == "1",
                        help="tiny sizes, to check that the script runs (also JEBM_SMOKE=1)")
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return parser
