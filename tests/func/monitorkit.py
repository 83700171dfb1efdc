"""Shared by the monitoring tests: demo production logs, written once per session by llama.cpp really
running the demo checkpoints on generated traffic."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_logs(tmp_path_factory, demo_dir) -> dict[str, Path]:
    """Folders of day files: v2 on eval-like traffic, v2 on shifted traffic, v3 on eval-like traffic, and v2
    and v3 on one traffic heavy on negated reviews."""
    from datetime import datetime, timezone
    from functools import partial

    from gitmodel.demo.traffic import write_log

    out = tmp_path_factory.mktemp("logs")
    # whole days, ending at today's midnight: each day file holds a seventh of the traffic whatever the
    # hour the tests run at (ending at the current hour, the first day held 4 to 86 records)
    write = partial(write_log, end=datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
    write(out / "v2", demo_dir / "sentiment-v2.gguf", 600, seed=1, version="v1.2.0")
    write(out / "shifted", demo_dir / "sentiment-v2.gguf", 600, shift=0.6, seed=2, version="v1.2.0")
    write(out / "v3", demo_dir / "sentiment-v3.gguf", 600, seed=3, version="v1.10.0")
    # the same requests, half of them negated reviews, answered by v2 and by v3
    write(out / "v2-negated", demo_dir / "sentiment-v2.gguf", 600, negated=0.5, seed=4, version="v1.2.0")
    write(out / "v3-negated", demo_dir / "sentiment-v3.gguf", 600, negated=0.5, seed=4, version="v1.10.0")
    return {name: out / name for name in ("v2", "shifted", "v3", "v2-negated", "v3-negated")}
