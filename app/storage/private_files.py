"""Files only the app's own user can read: its SQLite database, signing keys, sandbox secrets.

The database holds ciphertext, uids and hashes; a key file signs as this app; nothing
else on the machine needs to read either. Folders the app makes are 0700 and files 0600,
whatever the umask (which can only take bits away from the modes asked for here).
"""

import os
import stat
from pathlib import Path

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Read, write or execute for the group or for others.
SHARED_BITS = 0o077


def private_folder(path: Path, *, tighten: bool) -> Path:
    """Create the folder `path` 0700; with `tighten`, make an existing one 0700 too.

    Only the app's own folder (instance/) is tightened: a folder the operator named for
    the database (DATABASE_URL=sqlite:////tmp/x.db) is theirs to set, never changed here.
    """
    try:
        path.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True)
    except FileExistsError:
        # Made meanwhile by another worker starting at the same moment, or long ago.
        if tighten and path.is_dir():
            tighten_file(path)
    return path


def private_file(path: Path) -> None:
    """Create the file `path` empty and 0600, or take others' access away from an existing one.

    Several workers may start at once: no O_EXCL, so whoever comes second opens the file
    the first made. O_RDONLY, so an existing file needs no write access to be checked.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        _tighten(descriptor)
    finally:
        os.close(descriptor)


def tighten_file(path: Path) -> None:
    """Take the group's and others' access away from `path`, if it exists."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _tighten(descriptor)
    finally:
        os.close(descriptor)


def _tighten(descriptor: int) -> None:
    status = os.fstat(descriptor)
    mode = stat.S_IMODE(status.st_mode)
    # Another user's file is shared on purpose (the app writing it through its group),
    # and only its owner may change its mode anyway.
    if mode & SHARED_BITS and status.st_uid == os.geteuid():
        os.fchmod(descriptor, mode & ~SHARED_BITS)
