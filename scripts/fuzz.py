"""Fuzz the app for longer than the suite does: `make fuzz` (EXAMPLES=20000 by default).

Runs the properties of tests/test_fuzz.py with random examples instead of the suite's
few hundred fixed ones, then prints how many examples each property ran and whether any
failed. A failure is printed by Hypothesis as the smallest request that shows it, and
saved in .hypothesis/ so that the next run tries it first.

    python scripts/fuzz.py --examples 50000
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLES = 20000


def main() -> int:
    """Run the fuzz properties with many examples; return pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help="examples for the main property; the others run a third as many",
    )
    parser.add_argument("-k", dest="keyword", help="only the properties matching this")
    options = parser.parse_args()

    # Read by tests/test_fuzz.py when pytest imports it.
    os.environ["FUZZ_EXAMPLES"] = str(options.examples)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import pytest

    arguments = ["tests/test_fuzz.py", "-q", "-p", "no:logging"]
    if options.keyword:
        arguments += ["-k", options.keyword]
    started = time.monotonic()
    status = pytest.main(arguments)
    elapsed = time.monotonic() - started

    fuzz_tests = sys.modules.get("tests.test_fuzz")
    examples_run = fuzz_tests.EXAMPLES_RUN if fuzz_tests else {}
    print(f"\nFuzzed for {elapsed:.0f} s:")
    for name, count in sorted(examples_run.items()):
        print(f"  {count:>8,} examples  {name}")
    print(f"  {sum(examples_run.values()):>8,} examples in all")
    if status == 0:
        print("No failures.")
    else:
        print("FAILED: see Hypothesis's falsifying example above.")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
