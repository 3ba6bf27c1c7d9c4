"""Files written safely: the user's outputs checked before any work and staged, then renamed into place all
or none; the files mixaug names itself never written through a planted link; small files read within bounds."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..errors import MixaugError
from .formats import detect_format
from .serialise import serialise

# -- the write path -----------------------------------------------------------------------------------


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(
    path: str | Path, overwrite: bool, inputs: Iterable[str | Path] = (), min_free_bytes: int = 0, what: str = "output"
) -> None:
    """Before any work: the path can take a new file (a regular file or nothing there, folder writable,
    space for at least min_free_bytes) and is none of `inputs`. A symlink is written through to its target."""
    if str(path) == "-":
        return
    if str(path).endswith(("/", os.sep)):
        raise MixaugError(f"{what} {path} ends with '/', so it names a directory; name a file")
    target = Path(os.path.realpath(path))
    for other in inputs:
        if str(other) != "-" and os.path.lexists(other) and _same_file(path, other):
            raise MixaugError(f"{what} {path} is the same file as {other}; choose another path")
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise MixaugError(f"{what} {path} is a directory; name a file")
        if not stat.S_ISREG(mode):
            raise MixaugError(
                f"{what} {path} is not a regular file (a device, FIFO or socket); mixaug writes "
                "regular files only (use '-' for stdout)"
            )
        if not overwrite:
            raise MixaugError(f"{what} file exists: {path} (pass --overwrite to replace it)")
    folder = target.parent
    if not folder.is_dir():
        raise MixaugError(f"{what} folder does not exist: {folder}")
    try:  # the one sure test of "can I create a file here": create one
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MixaugError(f"cannot write the {what} in {folder}: {exc.strerror or exc}") from None
    if min_free_bytes:
        try:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
        except (OSError, AttributeError):
            free = None
        if free is not None and free < min_free_bytes:
            raise MixaugError(
                f"not enough space for the {what} {path}: it needs at least {min_free_bytes:,} bytes, "
                f"{free:,} are free in {folder}"
            )


def check_distinct(paths: dict[str, str | Path | None]) -> None:
    """Two outputs must not name the same file (or both stdout)."""
    named = [(what, p) for what, p in paths.items() if p is not None]
    for i, (wa, pa_) in enumerate(named):
        for wb, pb in named[i + 1 :]:
            if str(pa_) == "-" and str(pb) == "-":
                raise MixaugError(f"{wa} and {wb} cannot both go to stdout ('-')")
            if str(pa_) != "-" and str(pb) != "-" and os.path.realpath(pa_) == os.path.realpath(pb):
                raise MixaugError(f"{wa} and {wb} name the same file {pa_}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _set_modes(folder: Path, folder_mode: int, file_mode: int) -> None:
    """chmod a tree: folders to folder_mode, files to file_mode (the tree's own: chmod would follow a link)."""
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, folder_mode if path.is_dir() else file_mode)


def make_readable(folder: Path) -> None:
    """Folders from mkdtemp are 0700 and some writers make 0600 files: apply the usual umask modes."""
    mask = _umask()
    _set_modes(folder, 0o777 & ~mask, 0o666 & ~mask)


def make_private(folder: Path) -> None:
    """A tree for the user alone (a cache entry): folders 0700, files 0600, whatever the writers made."""
    _set_modes(folder, 0o700, 0o600)


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree, if there."""
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def atomic_folder(dest: str | Path, private: bool = False):
    """Yield a temp folder beside `dest`; on success it replaces `dest` whole (readers never see half).
    A link at `dest` is replaced by the folder, never written through (see "files mixaug names"); the temp
    folder is new (mkdtemp), so what is written inside it meets no planted link. `private`: the folder is
    left for the user alone (make_private), else given the usual umask modes."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        (make_private if private else make_readable)(tmp)
        old = dest.with_name(f".{dest.name}.old")
        _remove(old)
        if os.path.lexists(dest):
            os.replace(dest, old)
        os.replace(tmp, dest)
        _remove(old)
    except BaseException:
        _remove(tmp)
        raise


def _write_error(path: str | Path, exc: OSError) -> MixaugError:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    return MixaugError(f"cannot write {path}: {reason}; nothing was written")


def _open_staged(path: str | Path, follow: bool = True):
    """A temp file beside path's target, open for writing: (file, temp, target). With `follow` the target of
    a link at path is the one replaced; without, the link itself is."""
    target = Path(os.path.realpath(path)) if follow else Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    return os.fdopen(fd, "wb"), tmp, target


def _seal_staged(fh, tmp: str, target: Path, mode: int | None = None) -> None:
    """Flush and close a staged file and give it `mode`, else the mode (and owner, where allowed) of the file
    it replaces."""
    with fh:
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
        return
    try:
        old = target.lstat()
        if stat.S_ISLNK(old.st_mode):  # a link being replaced: the file it points to lends nothing
            raise FileNotFoundError
    except FileNotFoundError:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
    else:
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except OSError:
            pass


def _stage(path: str | Path, data: bytes) -> tuple[str, Path]:
    """Write data to a staged temp file; returns (temp, target)."""
    fh, tmp, target = _open_staged(path)
    try:
        fh.write(data)
        _seal_staged(fh, tmp, target)
    except BaseException:
        fh.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp, target


def write_files_atomic(files: list[tuple[str | Path, bytes]], staged: list[tuple[str, Path, str | Path]] = ()) -> None:
    """Write every file or none: all are staged as temp files first, then renamed into place. A failure
    (disk full, read-only folder) is one MixaugError naming the path, and leaves nothing behind.
    `staged`: (temp, target, path) of files already written to temp files (a streamed output), renamed first."""
    ready: list[tuple[str, Path, str | Path]] = list(staged)
    try:
        for path, data in files:
            try:
                ready.append((*_stage(path, data), path))
            except OSError as exc:
                raise _write_error(path, exc) from None
        for tmp, target, path in ready:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise _write_error(path, exc) from None
    finally:
        for tmp, _, _ in ready:
            Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees a partial file."""
    write_files_atomic([(path, data)])


def write_stdout(data: bytes) -> None:
    """Data to stdout; a reader that stopped early (`… -o - | head`) is not an error."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # as the Python docs advise: point stdout at devnull so exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def write_dataset(
    df: pd.DataFrame,
    path: str | Path,
    fmt: str | None = None,
    overwrite: bool = False,
    extra: list[tuple[str | Path, bytes]] = (),
) -> None:
    """Write a DataFrame by extension (or '-' for stdout), atomically; `extra` files (a stats JSON) are
    written with it, all or none."""
    fmt, gz = detect_format(path, fmt)
    data = serialise(df, fmt, gz)
    if str(path) == "-":
        if extra:
            write_files_atomic(list(extra))
        write_stdout(data)
        return
    check_output_path(path, overwrite)
    write_files_atomic([(path, data), *extra])


# -- files mixaug names --------------------------------------------------------------------------------
# A file the user names (-o, --report, --stats-json) is written through a link to its target: pointing an
# output at a link is the user's choice, as is an --out folder that is one. A file or folder mixaug names
# itself inside a folder (eval's report.md and journal, a run's state.json and train_log.jsonl, a checkpoint
# folder, the caches) is another matter: a link planted there must never redirect a write to what it points
# at. One rule per kind of write, all below:
#   whole files (write_named, named_file, atomic_folder) are made beside the name and renamed onto it, so a
#     link there is replaced by the new file, and its target is never opened;
#   appends (append_named) refuse a link, since appending means writing into whatever the name holds;
#   folders (named_folder) refuse a link, since everything below would land where it points;
#   copies (copy_named) take the files mixaug knows by name, refusing a link among them, and nothing else.
# Links are seen with lstat and O_NOFOLLOW: this stops a link planted before the run, not a race with a
# process that plants one while mixaug runs in the same folder.

_IS_A_LINK = "is a symbolic link (mixaug writes and copies no file of its own through a link)"


def _link_refused(path: str | Path) -> OSError:
    return OSError(errno.ELOOP, _IS_A_LINK, str(path))


def named_folder(root: str | Path, *names: str) -> Path:
    """root/names...: a folder mixaug names below a folder `root` that the user or the environment chose
    ($MIXAUG_CACHE, --out; it may itself be a link). A link at any of `names` is refused (OSError); one not
    there yet is left for the writer to make (mkdir makes a real folder)."""
    folder = Path(root)
    for name in names:
        folder = folder / name
        if folder.is_symlink():
            raise _link_refused(folder)
    return folder


@contextmanager
def named_file(path: str | Path, mode: int | None = None):
    """An open binary file for a writer that takes one (np.save, savefig), staged beside `path` and renamed
    onto it on success: readers never see half, and a link at `path` is replaced, never written through.
    `mode`: the new file's (a cache file's 0600), else that of the file it replaces or a plain open()'s."""
    fh, tmp, target = _open_staged(path, follow=False)
    try:
        yield fh
        _seal_staged(fh, tmp, target, mode)
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        Path(tmp).unlink(missing_ok=True)
        raise


def write_named(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """A whole file mixaug names itself (see named_file); a failure is one MixaugError naming the path."""
    try:
        with named_file(path, mode) as fh:
            fh.write(data)
    except OSError as exc:
        raise _write_error(path, exc) from None


def _open_named(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """os.open without following a link at path (refused as one, not ELOOP's 'too many levels'), and only
    onto a regular file: a FIFO would block the run for ever. `mode`: a created file's (before the umask)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_refused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def append_named(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Append data to a file mixaug names itself (a journal, a log), creating it; a link at `path` is refused
    (OSError). Written whole in one go, after a newline if the file's last line was cut short, and synced, so
    a failed or interrupted append spoils at most its own line and a finished one survives a crash.
    `mode`: the file's, new or found (a cache file's 0600), else a plain open()'s for a new one."""
    fd = _open_named(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "short write")
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_named(source: str | Path, dest: str | Path, names: Iterable[str]) -> None:
    """Copy the files `names` of folder `source`, and nothing else, into a new folder `dest`; a link at
    `source` or at any of them is refused (OSError): a copy carries what mixaug wrote, never a file a
    link points to."""
    import shutil

    source, dest = Path(source), Path(dest)
    if source.is_symlink():
        raise _link_refused(source)
    dest.mkdir()
    for name in names:
        with os.fdopen(_open_named(source / name, os.O_RDONLY), "rb") as src, open(dest / name, "xb") as out:
            shutil.copyfileobj(src, out)


def read_small(path: str | Path, where: str, limit: int) -> bytes:
    """A small file mixaug reads (a manifest, a model folder's modules.json, a run's state.json) within
    `limit` bytes: a huge one cannot exhaust memory. Too large or unreadable is one MixaugError starting
    with `where`, which names the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise MixaugError(f"{where} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise MixaugError(f"{where} is larger than {limit >> 20} MiB")
    return raw


def read_json_file(path: str | Path, where: str, limit: int) -> object:
    """A small JSON file (see read_small); not JSON is one MixaugError too."""
    raw = read_small(path, where, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise MixaugError(f"{where} is not valid JSON") from None


def check_out_folder(out: Path) -> None:
    """A run's --out folder, checked before any work: a file there is an error now, not after the run."""
    if out.exists() and not out.is_dir():
        raise MixaugError(f"--out {out} is a file; name a folder")
    if not out.exists() and out.parent.exists() and not out.parent.is_dir():
        raise MixaugError(f"--out {out}: {out.parent} is not a folder")
