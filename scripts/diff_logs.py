"""Compare two run logs object by object (every dataset and attribute, bit for bit, versions excepted).

    python scripts/diff_logs.py A.h5 B.h5

Prints every difference, one per line, and exits with status 1 if there is any, 0 if the content is the same.
"""

from __future__ import annotations

import sys

from neuroplast.io.diff import diff_files


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/diff_logs.py A.h5 B.h5", file=sys.stderr)
        return 2
    diffs = diff_files(*argv)
    for line in diffs:
        print(line)
    print(f"{len(diffs)} differences" if diffs else "same content (versions excepted)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
