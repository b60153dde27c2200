"""What one import did: for the command line's summary, the logs and the benchmarks."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from .content import ContentError

#: The steps of an import, in order, as `ImportReport.timings` names them.
STEPS = ("read", "parse", "render", "write", "index")


@dataclass
class ImportReport:
    """Files added, updated, unchanged and deleted; errors and warnings; seconds per step."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    errors: list[ContentError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    generation: int | None = None
    seconds: float = 0.0
    indexed: bool = False
    site_text_changed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted or self.site_text_changed)

    @contextlib.contextmanager
    def timed(self, step: str):
        """Add the time the block takes to `timings[step]`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    def summary(self) -> str:
        """One line: added, updated, unchanged, deleted, errors."""
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.deleted)} deleted, {len(self.errors)} errors, {len(self.warnings)} warnings"
            f" in {self.seconds:.2f}s"
        )
