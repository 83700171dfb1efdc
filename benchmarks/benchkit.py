"""What the benchmark scripts share: commands run quietly (a failure stops the script with what the
command printed) and a scratch folder that goes away unless asked to stay."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping


def sh(cwd: Path, *cmd: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """The standard output of ``cmd`` run in ``cwd``; with ``check``, a failure ends the script."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@contextmanager
def scratch(prefix: str, parent: Path | None = None, keep: bool = False) -> Iterator[Path]:
    """A new folder under ``parent`` (the system's temp folder by default), removed at the end unless
    ``keep``, when its path is printed."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
