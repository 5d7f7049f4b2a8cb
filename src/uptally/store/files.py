"""Files at rest are private: the database, its journal, locks and backups are owner-only.

The database holds hashed tokens, encrypted secrets, subscribers' e-mail addresses and the
audit log; a backup holds all of it. Whatever umask the process runs under, uptally creates
them 0600 (directories 0700) and tightens existing ones it opens.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create the directory (and missing parents) 0700; an existing one is left as it is."""
    try:
        path.mkdir(parents=True, mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask


def private_file(path: Path, *, create: bool = False) -> None:
    """Make `path` owner-only (created empty when `create` and missing); no-op if missing."""
    if create:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700 or FILE_MODE)


def private_sqlite(path: Path) -> None:
    """The database file 0600 before SQLite opens it: SQLite gives its -wal and -shm files
    the database file's permissions, so they follow."""
    private_dir(path.parent)
    private_file(path, create=True)
    for suffix in ("-wal", "-shm", "-journal", ".lock"):
        private_file(path.with_name(path.name + suffix))
