"""`kill -9` during incremental index updates: the live index always opens, at the previous or the new generation."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from whoosh import query

from portal.search import store

from .servers import PROJECT_ROOT

pytestmark = pytest.mark.slow

DOCUMENTS = 200
PER_UPDATE = 5

#: The child: updates the index over and over, each generation replacing 5 documents whose body
#: names that generation, prints each generation once it is live, then merges small segments.
CHILD = """
import sys
from pathlib import Path
from portal.search import store
from tests.test_index_crash import changed_slugs, document

instance = Path(sys.argv[1])
generation = store.index_generation(store.live_index_dir(instance))
while True:
    generation += 1
    slugs = changed_slugs(generation)
    store.update_index(instance, generation, slugs, [document(slug, generation) for slug in slugs])
    print(generation, flush=True)
    store.merge_segments(instance)  # now and then: small segments merged, under the same generation
"""


def changed_slugs(generation: int) -> list[str]:
    """The slugs generation `generation` replaces (distinct from those of the 30 generations before)."""
    return [f"doc-{(generation * PER_UPDATE + i) % DOCUMENTS}" for i in range(PER_UPDATE)]


def document(slug: str, generation: int) -> dict:
    """An index document whose body carries the marker of the generation that wrote it."""
    words = f"zeppelin harbour lantern m{generation} {slug.replace('-', '')}"
    return {
        "slug": slug,
        "title": slug,
        "summary": "",
        "headings": "",
        "body": words,
        "tags": "crash",
        "kind": "",
        "date": dt.datetime(2025, 1, 1),
        "title_sort": slug,
        "spell": words,
    }


def check_live_index(instance, at_least: int) -> int:
    """The live index opens, holds every document once, and its content is that of its generation."""
    generation, count = store.check_index(instance)
    assert generation is not None and generation >= at_least, (generation, at_least)
    assert count == DOCUMENTS
    ix = store.open_index(store.live_index_dir(instance))
    try:
        with ix.searcher() as searcher:
            for slug in ("doc-0", "doc-199", *changed_slugs(generation)):
                assert len(searcher.search(query.Term("slug", slug))) == 1
            if generation > 1:  # the documents this generation wrote are there
                hits = searcher.search(query.Term("body", f"m{generation}"), limit=None)
                assert sorted(hit["slug"] for hit in hits) == sorted(changed_slugs(generation))
    finally:
        ix.close()
    return generation


def test_kill_9_during_incremental_updates_leaves_a_live_index(tmp_path):
    instance = tmp_path / "instance"
    store.build_index(instance, [document(f"doc-{i}", 1) for i in range(DOCUMENTS)], 1)
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    confirmed, rng, kills, building_seen = 1, random.Random(9), 0, 0
    while kills < 20:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(instance)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        first = child.stdout.readline()  # the child is past start-up and has made one update
        assert first.strip(), "the updating process died"
        confirmed = int(first)
        time.sleep(rng.uniform(0, 0.25))
        building_seen += any(instance.glob("index.*.building"))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        confirmed = max([confirmed, *map(int, child.stdout.read().split())])
        child.stdout.close()
        kills += 1
        generation = check_live_index(instance, at_least=confirmed)
        assert generation <= confirmed + 1  # the update under way at the kill, at most
        assert time.monotonic() - started < 30
    assert building_seen, "no kill landed while an update was being written"
    # The next update cleans up what the killed ones left behind.
    child = subprocess.run(
        [sys.executable, "-c", CHILD.replace("while True", "for _ in range(1)"), str(instance)],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    check_live_index(instance, at_least=int(child.stdout))
    assert not list(instance.glob("index.*.building"))
