"""`uptally serve` with SQLite's `PRAGMA synchronous` set to argv[1] instead of uptally's NORMAL.

    python bench/_serve_synchronous.py FULL serve --config ... (the rest as for `uptally`)

For like-for-like comparisons with servers that run SQLite with its default, synchronous=FULL
(every commit waits for fsync).
"""

from __future__ import annotations

import sys

from uptally.store.database import Database

assert Database.__init__.__kwdefaults__ is not None
Database.__init__.__kwdefaults__["synchronous"] = sys.argv[1]
sys.argv = ["uptally", *sys.argv[2:]]

from uptally.cli import main  # noqa: E402

main()
