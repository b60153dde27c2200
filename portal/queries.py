"""Read-only database queries the views share."""

from __future__ import annotations

from sqlalchemy import func, select

from .models import Entry, ImportRun, Tag, db, entry_tags

KIND_LABELS = {
    "technology": ("Technology", "Technologies", "Tools and platforms: what they are for, how to set them up, where they bite."),
    "concept": ("Concept", "Concepts", "Ideas that outlive any one tool: design, data, concurrency, caching."),
    "challenge": ("Challenge", "Challenges and solutions", "Real problems met along the way, and how they were solved."),
    "practice": ("Best practice", "Best practices", "Habits that keep code, teams and systems healthy."),
}  # fmt: skip


def kind_counts() -> dict[str, int]:
    """Entries per kind, in the fixed order of kinds."""
    rows = dict(db.session.execute(select(Entry.kind, func.count()).group_by(Entry.kind)).all())
    return {kind: rows.get(kind, 0) for kind in KIND_LABELS}


def entries_page(page: int, per_page: int, kind: str | None = None):
    """Entries newest first (optionally of one kind), paginated."""
    stmt = select(Entry).order_by(Entry.sort_date.desc(), Entry.title)
    if kind:
        stmt = stmt.where(Entry.kind == kind)
    return db.paginate(stmt, page=page, per_page=per_page, error_out=False)


def entry_by_slug(slug: str) -> Entry | None:
    """One entry by its slug."""
    return db.session.scalar(select(Entry).where(Entry.slug == slug))


def entries_by_slugs(slugs: list[str]) -> list[Entry]:
    """Entries for the given slugs, in the order given (search ranking)."""
    if not slugs:
        return []
    found = {e.slug: e for e in db.session.scalars(select(Entry).where(Entry.slug.in_(slugs)))}
    return [found[s] for s in slugs if s in found]


def texts_by_slugs(slugs: list[str]) -> dict[str, str]:
    """slug -> plain text, for building search snippets."""
    if not slugs:
        return {}
    return dict(db.session.execute(select(Entry.slug, Entry.text).where(Entry.slug.in_(slugs))).all())


def popular_tags(limit: int = 20) -> list[tuple[Tag, int]]:
    """The most used tags with their entry counts."""
    count = func.count(entry_tags.c.entry_id)
    stmt = (
        select(Tag, count)
        .join(entry_tags, entry_tags.c.tag_id == Tag.id)
        .group_by(Tag.id)
        .order_by(count.desc(), Tag.slug)
        .limit(limit)
    )
    return [(tag, n) for tag, n in db.session.execute(stmt).all()]


def entry_count() -> int:
    """How many entries the database holds."""
    return db.session.scalar(select(func.count()).select_from(Entry)) or 0


def last_import() -> ImportRun | None:
    """The latest import that changed content."""
    return db.session.scalar(select(ImportRun).order_by(ImportRun.id.desc()).limit(1))
