"""The four kinds of entry: their order, their labels, and every spelling that names one.

One list, read by parsing (a `kind:` key or a folder such as `best-practices/`), by the views
(`/kinds/<kind>` and the `kind` filter), by the API's schema and by the templates.
"""

from __future__ import annotations

from typing import NamedTuple


class KindLabels(NamedTuple):
    """How a page names a kind: one entry, many entries, and a sentence about them."""

    one: str
    many: str
    description: str


KINDS = {
    "technology": KindLabels("Technology", "Technologies", "Tools and platforms: what they are for, how to set them up, where they bite."),
    "concept": KindLabels("Concept", "Concepts", "Ideas that outlive any one tool: design, data, concurrency, caching."),
    "challenge": KindLabels("Challenge", "Challenges and solutions", "Real problems met along the way, and how they were solved."),
    "practice": KindLabels("Best practice", "Best practices", "Habits that keep code, teams and systems healthy."),
}  # fmt: skip

#: Slugs that name a kind (in front matter, as a folder, in a URL) -> the kind.
KIND_ALIASES = {
    **{kind: kind for kind in KINDS},
    "technologies": "technology",
    "tech": "technology",
    "concepts": "concept",
    "challenges": "challenge",
    "challenge-and-solution": "challenge",
    "challenges-and-solutions": "challenge",
    "practices": "practice",
    "best-practice": "practice",
    "best-practices": "practice",
}
