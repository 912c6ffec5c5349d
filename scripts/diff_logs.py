"""Compare two run logs object by object (every dataset and attribute, bit for bit, versions excepted).

    python scripts/diff_logs.py A.h5 B.h5
    python scripts/diff_logs.py A.h5 DIGESTS.json     # against the digests of a log (content_digests)
    python scripts/diff_logs.py --digests A.h5 > DIGESTS.json

Prints every difference, one per line, and exits with status 1 if there is any, 0 if the content is the same.
``--digests`` writes the SHA-256 digest of every object of a log as JSON (``neuroplast.io.diff``): how
data/quickstart_sine.json, the default model's log that every supported Python must reproduce, is made.
"""

from __future__ import annotations

import json
import sys

from neuroplast.io.diff import content_digests, diff_digests, diff_files


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--digests":
        json.dump(content_digests(argv[1]), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    if len(argv) != 2:
        print("usage: python scripts/diff_logs.py A.h5 B.h5|DIGESTS.json | --digests A.h5", file=sys.stderr)
        return 2
    if argv[1].endswith(".json"):
        with open(argv[1], encoding="utf-8") as f:
            diffs = diff_digests(json.load(f), content_digests(argv[0]))
    else:
        diffs = diff_files(*argv)
    for line in diffs:
        print(line)
    print(f"{len(diffs)} differences" if diffs else "same content (versions excepted)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
