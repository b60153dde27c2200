"""Database tables: entries, tags, links between entries, files linked from entries, import runs, the index change log,
and what a `stat` said of each entry's file."""

from __future__ import annotations

import datetime as dt

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Column, ForeignKey, Index, LargeBinary, String, Table, Text, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base shared by every model."""


# pool_pre_ping: after the database restarts, a pooled connection is found dead and replaced before
# a request uses it, instead of failing that request.
db = SQLAlchemy(model_class=Base, engine_options={"pool_pre_ping": True})

#: The PostgreSQL channel on which an import's commit announces its generation (NOTIFY payload).
GENERATION_CHANNEL = "nexus_generation"

entry_tags = Table(
    "entry_tags",
    Base.metadata,
    Column("entry_id", ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


def first_line(error: BaseException) -> str:
    """The first line of a database error's message, the driver's own if it wraps one: drivers add hints on the lines after."""
    error = getattr(error, "orig", None) or error
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def utcnow() -> dt.datetime:
    """Naive UTC now, the form stored in every timestamp column."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Entry(db.Model):
    """One imported Markdown file, rendered and ready to serve."""

    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    slug: Mapped[str] = mapped_column(String(1024), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str | None] = mapped_column(String(20), index=True)
    date: Mapped[dt.date | None]
    updated: Mapped[dt.date | None]
    sort_date: Mapped[dt.date] = mapped_column(index=True)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    toc: Mapped[list] = mapped_column(JSON, default=list)
    headings: Mapped[str] = mapped_column(Text, default="")
    word_count: Mapped[int] = mapped_column(default=0)
    reading_minutes: Mapped[int] = mapped_column(default=1)
    has_diagram: Mapped[bool] = mapped_column(default=False)
    link_keys: Mapped[list] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    tags: Mapped[list[Tag]] = relationship(
        secondary=entry_tags, back_populates="entries", order_by="Tag.slug", lazy="selectin"
    )
    outgoing: Mapped[list[Link]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self):
        return f"<Entry {self.slug}>"


# Listing orders: newest first (all entries, or one kind) and recently updated (the home page).
Index("ix_entries_newest", Entry.sort_date.desc(), Entry.title)
Index("ix_entries_kind_newest", Entry.kind, Entry.sort_date.desc(), Entry.title)
# NULLS LAST is SQLite's default for DESC and cannot be spelled in its indexes; PostgreSQL needs it.
Index("ix_entries_recently_updated", Entry.updated.desc(), Entry.modified_at.desc(), Entry.title).ddl_if(
    dialect="sqlite"
)
Index(
    "ix_entries_recently_updated_pg", Entry.updated.desc().nulls_last(), Entry.modified_at.desc(), Entry.title
).ddl_if(dialect="postgresql")
# What every import reads of every entry (`writer.existing_entries`), without SQLite walking the rows'
# HTML and text to reach `content_hash` (at 10,000 entries half the time of an unchanged import's query).
# PostgreSQL keeps long text out of line and needs none.
Index("ix_entries_existing", Entry.path, Entry.slug, Entry.content_hash).ddl_if(dialect="sqlite")


class FileStamp(db.Model):
    """What a `stat` of an entry's file said when an import last read it, so the next can skip reading it.

    `signature` is the file's size, mtime, ctime, device and inode; `salt` what else its hash covered (the
    renderer, settings, vocabulary, its git dates); `content_hash` the hash its bytes then had.
    While all three still hold (and the entry still has that hash) the file is unchanged. Its own
    table, so a database from before it gains it through `create_all`; gone with its entry.
    """

    __tablename__ = "file_stamps"

    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True)
    signature: Mapped[str] = mapped_column(String(200))
    salt: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))


class Tag(db.Model):
    """A normalised tag (slug) with the name people see."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    aliases: Mapped[list] = mapped_column(JSON, default=list)

    entries: Mapped[list[Entry]] = relationship(secondary=entry_tags, back_populates="tags")

    def __repr__(self):
        return f"<Tag {self.slug}>"


class Link(db.Model):
    """A link from one entry's body to another entry, for backlinks."""

    __tablename__ = "links"

    source_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True)
    target_slug: Mapped[str] = mapped_column(String(1024), primary_key=True)

    source: Mapped[Entry] = relationship(back_populates="outgoing")

    __table_args__ = (Index("ix_links_target_slug", "target_slug"),)


class ImportRun(db.Model):
    """One completed import; the highest id is the content generation."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime]
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    entries: Mapped[int] = mapped_column(default=0)


class IndexChange(db.Model):
    """Which entries one generation changed, so that every node can update its search index incrementally.

    One row per generation, written in the import's own transaction (a generation without a row
    is a gap: nodes that need it rebuild in full). `changed` holds the slugs added, updated or
    rendered again, `deleted` the slugs that went away (a slug change is both: old deleted, new
    changed). When an import changes more entries than an incremental update suits, both are
    None: "rebuild". Only the last `KEEP` generations are kept.
    """

    __tablename__ = "index_changes"

    KEEP = 100
    #: An incremental update suits up to this many changed entries, or this share of the index.
    MAX_SMALL = 100
    MAX_SHARE = 0.2

    generation: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    changed: Mapped[list | None] = mapped_column(JSON)
    deleted: Mapped[list | None] = mapped_column(JSON)

    @classmethod
    def incremental_limit(cls, documents: int) -> int:
        """How many changed slugs an index of `documents` documents takes incrementally (more: rebuild)."""
        return max(cls.MAX_SMALL, int(documents * cls.MAX_SHARE))


def configure_engine_events(engine) -> None:
    """SQLite pragmas and `BEGIN IMMEDIATE` for writers; nothing for other databases."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself (pysqlite's legacy handling can lose updates).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = "IMMEDIATE" if connection.get_execution_options().get("nexus_write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")


class SiteText(db.Model):
    """Rendered site-wide text from the content folder (`_intro.md` becomes `intro`)."""

    __tablename__ = "site_texts"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    html: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))


class Attachment(db.Model):
    """The bytes of a file some entry links to (an image beside a note), stored once under their SHA-256.

    In the database, not the content folder, so every node serves them, including nodes on a
    shared PostgreSQL that have no content folder. Deleted when no entry links to them.
    """

    __tablename__ = "attachments"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    type: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary)


#: Which files each entry links to, by path in the content folder: the stamp the import saw (a
#: change imports the entry again) and the stored bytes' hash (none when the file is not served:
#: missing, too large; kept so the entry is imported again when the file appears).
entry_attachments = Table(
    "entry_attachments",
    Base.metadata,
    Column("entry_id", ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("stamp", String(1200), nullable=False),
    Column("hash", String(64), index=True),
)
