"""The cyclic garbage collector paused while a block builds many long-lived objects and little garbage."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused():
    """No cyclic collection inside the block (the collector as it was after it); what it made goes to the oldest generation.

    Building the app, or an import's parse, render and write, makes objects that live on and next
    to no cycles: each collection would walk the growing heap for nothing, and what reference
    counting cannot free waits for the next collection. Afterwards `gc.freeze` then
    `gc.unfreeze` move the survivors to the oldest generation, so the next young collection does
    not walk them either.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()
