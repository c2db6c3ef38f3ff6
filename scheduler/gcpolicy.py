"""The garbage collector's settings for a long-running daemon process.

Why: CPython's cyclic collector runs after every 700 net allocations of container objects and
scans, in its oldest generation, everything the process ever kept: the imported modules,
SQLAlchemy's tables and compiled statements, aiohttp's machinery. In a bench run of 1,000
posts (staging, then the burst) it ran 740 times, 0.66 s in all, its full collections taking
15-90 ms each with every thread and the event loop stopped (`bench/`: the burst's span went from 3.5-3.7 s to
2.9-3.0 s with these settings). What the daemon made at start-up lives as long as the process,
so it is moved out of the collector's sight (`gc.freeze`), and young objects are collected in
larger batches. Reference counting still frees everything that is not in a cycle at once; a
cycle among the frozen start-up objects is never collected (they live as long as the process).
"""

from __future__ import annotations

import gc

# gen0 after 50,000 allocations instead of 700 (a few MB at most between collections);
# gen1 and gen2 every 20 collections of the younger one instead of 10
SERVICE_THRESHOLDS = (50_000, 20, 20)


def tune_for_service() -> None:
    """Freeze what exists now and widen the collection thresholds. For the `run` process
    only, once its start-up is done (tests running a daemon in-process keep the defaults)."""
    gc.collect()  # what start-up left as garbage goes now, not frozen with the rest
    gc.freeze()
    gc.set_threshold(*SERVICE_THRESHOLDS)
