"""The cache folder and its one trust rule, the way ssh treats ~/.ssh.

`cache_dir()` ($MIXAUG_CACHE, else the user cache dir) may be restored from a shared store or lie on a disk
other users reach, so nothing found below it is trusted for being there:

- mixaug creates its folders there 0700 and its files 0600 (`make_folder`; the writers pass mode 0o600);
- an entry is read only when it, and every folder on the way down from cache_dir() (not cache_dir() itself
  or above: the user chose those), is owned by the user and writable by nobody else, and it is of the kind
  expected (a regular file, or a folder tree of such files) within the reader's size cap (`trusted`,
  `trusted_tree`, `read_trusted`). Anything else is a cache miss with one MixaugWarning per path per
  process, never an error: the entry is built again;
- a link on the way that the user made (owned by them) to a folder they own is followed for reading (a
  models folder kept on a bigger disk); mixaug never writes through a link (`make_folder` refuses one);
- a folder entry is built in a private temp folder beside it and renamed into place when finished
  (`build_entry`), under a lock so that two runs building the same entry build it once.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .data.write import _link_refused, _open_named, _remove, make_private
from .errors import MixaugWarning

MISSING = "is not there"  # why_untrusted's answer for an entry not (yet) in the cache: a miss, no warning
MAX_TREE_ENTRIES = 10_000  # files and folders of one folder entry checked by trusted_tree
_warned: set[str] = set()


def cache_dir() -> Path:
    """Where converted models and the caches live: $MIXAUG_CACHE, else the XDG user cache dir."""
    env = os.environ.get("MIXAUG_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mixaug"))


def _route(path: Path) -> list[Path]:
    """The names checked for `path`: each level below cache_dir() down to it, or `path` alone outside it."""
    root = cache_dir()
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return [path]
    return [root.joinpath(*parts[: i + 1]) for i in range(len(parts))] or [path]


def _not_private(st: os.stat_result) -> str | None:
    if st.st_uid != os.getuid():
        return f"is owned by another user, uid {st.st_uid}"
    if st.st_mode & 0o022:
        return "is writable by group or others"
    return None


def why_untrusted(path: str | Path, folder: bool = False, max_bytes: int | None = None) -> str | None:
    """None when the entry at `path` (a regular file, or with `folder` a folder) may be read under the trust
    rule; MISSING when it (or a folder on the way) is not there; else why not, naming the culprit."""
    path = Path(path)
    steps = _route(path)
    st = None
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        want_folder = folder or not last
        who = "it" if step == path else str(step)
        try:
            st = os.lstat(step)
        except FileNotFoundError:
            return MISSING
        except OSError as exc:  # ENOTDIR: a file where a folder should be
            return f"{who} cannot be examined: {exc.strerror or exc}"
        if stat.S_ISLNK(st.st_mode):
            if not want_folder:
                return "it is a symbolic link"
            if st.st_uid != os.getuid():
                return f"{who} is a symbolic link another user made"
            try:
                st = os.stat(step)  # a link the user made: what it points to must be theirs alone too
            except OSError:
                return f"{who} is a dangling symbolic link"
        if want_folder and not stat.S_ISDIR(st.st_mode):
            return f"{who} is not a folder"
        if not want_folder and not stat.S_ISREG(st.st_mode):
            return "it is not a regular file"
        reason = _not_private(st)
        if reason:
            return f"{who} {reason}"
    if not folder and max_bytes is not None and st is not None and st.st_size > max_bytes:
        return f"it is larger than {max_bytes:,} bytes"
    return None


def warn_once(path: str | Path, why: str, what: str = "cache entry") -> None:
    """One MixaugWarning per path per process: `what` `path` unusable (`why`); continuing without it."""
    if str(path) in _warned:
        return
    _warned.add(str(path))
    warnings.warn(MixaugWarning(f"{what} {path} unusable ({why}); continuing without it"), stacklevel=3)


def trusted(path: str | Path, max_bytes: int | None = None, folder: bool = False, what: str = "cache file") -> bool:
    """Whether the trust rule lets mixaug read this entry (see the module's docstring); an entry there but
    refused costs one warning."""
    why = why_untrusted(path, folder, max_bytes)
    if why is not None and why != MISSING:
        warn_once(path, why, what)
    return why is None


def trusted_tree(folder: str | Path, what: str = "cache entry") -> bool:
    """A folder entry (a converted LM, a task model, an adapted checkpoint): the folder is trusted and so is
    everything in it; a link inside it is refused (mixaug makes none there)."""
    folder = Path(folder)
    if not trusted(folder, folder=True, what=what):
        return False
    count = 0
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            count += 1
            path = Path(base) / name
            try:
                st = os.lstat(path)
            except OSError as exc:
                why = f"{path} cannot be examined: {exc.strerror or exc}"
            else:
                kind_ok = stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
                why = (_not_private(st) if kind_ok else "is not a regular file or folder") or ""
                why = f"{path} {why}" if why else ""
            if count > MAX_TREE_ENTRIES:
                why = f"it holds more than {MAX_TREE_ENTRIES:,} files"
            if why:
                warn_once(folder, why, what)
                return False
    return True


@contextmanager
def open_trusted(path: str | Path, max_bytes: int, what: str = "cache file") -> Iterator:
    """The file open for reading when the trust rule allows it (checked by name, then again on the open file:
    no link followed, no FIFO waited on), else None."""
    fh = None
    if trusted(path, max_bytes, what=what):
        try:
            fd = _open_named(path, os.O_RDONLY)
        except OSError as exc:
            warn_once(path, f"it cannot be opened: {exc.strerror or exc}", what)
        else:
            st = os.fstat(fd)
            why = _not_private(st) or (f"is larger than {max_bytes:,} bytes" if st.st_size > max_bytes else None)
            if why:
                why = f"it {why}"
                os.close(fd)
                warn_once(path, why, what)
            else:
                fh = os.fdopen(fd, "rb")
    try:
        yield fh
    finally:
        if fh is not None:
            fh.close()


def read_trusted(path: str | Path, max_bytes: int, what: str = "cache file") -> bytes | None:
    """A whole cache file of at most max_bytes, or None (see open_trusted)."""
    with open_trusted(path, max_bytes, what) as fh:
        if fh is None:
            return None
        data = fh.read(max_bytes + 1)
    return data if len(data) <= max_bytes else None


def make_folder(folder: str | Path) -> Path:
    """Create a cache folder for writing: cache_dir() (when missing) and each level below it 0700; a link at
    any level below cache_dir() is refused (OSError): mixaug writes nothing through a link."""
    folder, root = Path(folder), cache_dir()
    try:
        parts = folder.relative_to(root).parts
    except ValueError:  # outside the cache: a folder the caller chose
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder
    if not root.is_dir():
        root.mkdir(parents=True, mode=0o700, exist_ok=True)  # exist_ok: a parallel job may make it first
    for i in range(len(parts)):
        step = root.joinpath(*parts[: i + 1])
        if step.is_symlink():
            raise _link_refused(step)
        try:
            step.mkdir(mode=0o700)
        except FileExistsError:
            if not step.is_dir():
                raise
            st = step.stat()
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(step, 0o700)  # made by an older mixaug under the umask: the trust rule would refuse it
    return folder


def _lock_file(entry: Path) -> Path:
    """cache_dir()/locks/<kind>-<name>.lock: kept out of the kinds' folders, which hold entries only."""
    root = cache_dir()
    if entry.parent.parent == root:
        return make_folder(root / "locks") / f"{entry.parent.name}-{entry.name}.lock"
    return entry.with_name(f".{entry.name}.lock")


@contextmanager
def entry_lock(entry: Path, wait: float) -> Iterator[bool]:
    """An exclusive lock for building `entry` (fcntl.flock on its lock file, released when the process ends,
    however it ends), waited for up to `wait` seconds. Yields whether it was taken: a caller that did not
    get it goes on without it (its work is then done twice, never wrongly)."""
    try:
        import fcntl

        fd = _open_named(_lock_file(entry), os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        yield False
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    taken = False
                    break
                if wait >= 5 and time.monotonic() - (deadline - wait) < 0.25:  # say once why the run is still
                    warnings.warn(
                        MixaugWarning(
                            f"another run is building {entry.parent.name}/{entry.name}; waiting for it "
                            f"(up to {wait:.0f} s) to use what it builds"
                        ),
                        stacklevel=3,
                    )
                time.sleep(0.2)
            except OSError:
                taken = False
                break
        yield taken
    finally:
        os.close(fd)


def build_entry(entry: Path, build: Callable[[Path], None], ready: Callable[[Path], bool], wait: float) -> Path:
    """The folder entry `entry`, built once. `ready(entry)` says whether a finished one the trust rule allows
    is there (then it is used as it is). Else, under entry_lock, `build(tmp)` fills a new private folder
    beside it, which is renamed into place when finished: a reader never sees half an entry, and a run never
    touches another's folder in progress. A run that waited for the lock uses what the other built; if two
    built at once all the same (the lock not had), the first rename wins and the other's copy is discarded.
    A stale entry (unfinished, or refused by the trust rule) is replaced. Returns the folder to use."""
    if ready(entry):
        return entry
    try:
        make_folder(entry.parent)
    except OSError as exc:  # the kind's folder is a link (the user's: read through, never written) or unmakeable
        return _scratch_entry(entry, build, exc)
    with entry_lock(entry, wait):
        if ready(entry):
            return entry
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".building", dir=entry.parent))
        try:
            build(tmp)
            make_private(tmp)
            if os.path.lexists(entry) and not ready(entry):  # stale: set aside and removed
                old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".stale", dir=entry.parent))
                os.replace(entry, old / "entry")
                _remove(old)
            try:
                os.rename(tmp, entry)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not ready(entry):
                    raise
                _remove(tmp)  # another run's rename came first: use its entry
        except BaseException:
            _remove(tmp)
            raise
    return entry


def _scratch_entry(entry: Path, build: Callable[[Path], None], exc: OSError) -> Path:
    """`entry` built for this process only, in a private temporary folder removed at exit, with one warning:
    where the cache cannot hold it, a run still goes on."""
    import atexit
    import shutil

    from .data.write import atomic_folder

    warnings.warn(
        MixaugWarning(
            f"{entry.parent.name}/{entry.name} not kept in the cache ({exc.strerror or exc}: "
            f"{exc.filename or entry.parent}); building it for this run only"
        ),
        stacklevel=3,
    )
    scratch = Path(tempfile.mkdtemp(prefix=f"mixaug-{entry.parent.name}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    with atomic_folder(scratch / entry.name, private=True) as tmp:
        build(tmp)
    return scratch / entry.name
