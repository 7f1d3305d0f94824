"""Atomic file writes: results, structures and checkpoints are never left half-written."""
import os
import os.path as osp
import tempfile
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The temporary name keeps ``path``'s extension last, because some writers (``Config.dump``,
    ``savefig``) choose the format from it. On any error the temporary file is removed and
    ``path`` is untouched.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + osp.basename(path),
                               suffix='.tmp' + osp.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file usual permissions
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str, text: str) -> str:
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)

    return atomic_write(path, write)
