"""A deterministic corpus of realistic Nexus entries for benchmarks.

    python bench/corpus.py N OUTDIR [--seed SEED]

writes N Markdown files with front matter (title, summary, kind, 3-6 tags from a fixed
vocabulary, date) and 300-800 words of technical prose: sections, lists, code blocks and
tokens such as `select_related` or `docker-compose`. Entry i depends only on the seed and i,
so the first 1,000 entries of a 10,000-entry corpus are the 1,000-entry corpus.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import re
from pathlib import Path

DEFAULT_SEED = 20250101

KIND_FOLDERS = {"technology": "technologies", "concept": "concepts", "challenge": "challenges", "practice": "practices"}
KIND_WEIGHTS = {"technology": 4, "concept": 3, "challenge": 2, "practice": 2}

# Tags, most used first: tag popularity falls off like real notes (a few tags on most entries).
TAGS = [
    "python", "django", "postgresql", "performance", "testing", "docker", "api-design", "caching", "security",
    "celery", "redis", "rest-api", "ci-cd", "kubernetes", "observability", "database-design", "async", "orm",
    "drf", "linux", "git", "javascript", "typescript", "react", "graphql", "rabbitmq", "kafka", "nginx",
    "gunicorn", "terraform", "aws", "monitoring", "logging", "migrations", "concurrency", "sqlalchemy", "flask",
    "fastapi", "pytest", "github-actions", "jenkins", "docker-compose", "elasticsearch", "mysql", "sqlite",
    "openapi", "authentication", "authorization", "indexing", "pagination", "serialization", "deployment",
    "scaling", "transactions", "queues", "code-review", "documentation", "refactoring", "debugging", "profiling",
]  # fmt: skip
TAG_WEIGHTS = [1.0 / (rank + 1) ** 0.8 for rank in range(len(TAGS))]

TECHS = [
    "Python", "Django", "PostgreSQL", "Redis", "Celery", "RabbitMQ", "Kafka", "Docker", "Kubernetes", "Nginx",
    "Gunicorn", "Terraform", "GraphQL", "SQLAlchemy", "Flask", "FastAPI", "pytest", "Jenkins", "GitHub Actions",
    "Elasticsearch", "MySQL", "SQLite", "React", "TypeScript", "JavaScript", "Prometheus", "Grafana", "OpenAPI",
    "Django REST Framework", "uvicorn", "asyncio", "Ansible", "Linux", "git", "Sentry", "MinIO", "Vault",
]  # fmt: skip
CONCEPTS = [
    "caching", "indexing", "connection pooling", "backpressure", "idempotency", "rate limiting", "retries",
    "observability", "structured logging", "tracing", "schema migrations", "query planning", "sharding",
    "replication", "eventual consistency", "transactions", "isolation levels", "optimistic locking", "pagination",
    "serialization", "authentication", "authorization", "input validation", "dependency injection",
    "feature flags", "blue-green deployment", "canary releases", "load balancing", "horizontal scaling",
    "memory profiling", "code review", "test fixtures", "property-based testing", "contract testing",
    "continuous integration", "continuous delivery", "infrastructure as code", "secret management",
]  # fmt: skip
NOUNS = [
    "queryset", "endpoint", "worker", "queue", "cache key", "migration", "index", "container", "pod", "pipeline",
    "request", "response", "payload", "schema", "table", "column", "foreign key", "session", "token", "cookie",
    "middleware", "serializer", "viewset", "signal", "task", "broker", "consumer", "producer", "partition",
    "replica", "transaction", "lock", "deadlock", "timeout", "retry", "webhook", "cron job", "log line",
    "metric", "dashboard", "alert", "trace", "span", "fixture", "mock", "snapshot", "build", "artifact",
    "image", "volume", "network", "secret", "certificate", "proxy", "socket", "thread", "process", "event loop",
    "coroutine", "generator", "decorator", "context manager", "dataclass", "type hint", "docstring", "template",
]  # fmt: skip
VERBS = [
    "slows down", "falls over", "times out", "leaks memory", "retries forever", "blocks the event loop",
    "holds a lock", "returns stale data", "double-counts", "drops messages", "scales linearly", "warms up",
    "recovers", "degrades gracefully", "fails fast", "saturates the pool", "thrashes the cache",
]  # fmt: skip
ADJECTIVES = [
    "slow", "flaky", "noisy", "brittle", "predictable", "idempotent", "stateless", "durable", "cheap",
    "expensive", "hot", "cold", "nested", "denormalised", "normalised", "eager", "lazy", "concurrent",
    "sequential", "readable", "observable", "reproducible", "minimal", "defensive", "explicit", "implicit",
]  # fmt: skip
TOKENS = [
    "select_related", "prefetch_related", "N+1", "async/await", "CI/CD", "docker-compose", "EXPLAIN ANALYZE",
    "get_or_create", "bulk_create", "on_commit", "max_connections", "work_mem", "keep-alive", "HTTP/2",
    "utf-8", "X-Request-ID", "__init__.py", "pyproject.toml", "requirements.txt", "k8s", "psql", "drf",
]  # fmt: skip
HEADINGS = [
    "Why it matters", "Setting it up", "Configuration", "Pitfalls", "Measuring it", "The fix", "Lessons learned",
    "Trade-offs", "In production", "Testing it", "How it works", "Alternatives", "Debugging", "Checklist",
    "What we tried first", "The root cause", "Background", "Going further",
]  # fmt: skip
TITLE_TEMPLATES = {
    "technology": ["{tech} {concept}", "{tech} in production", "Getting started with {tech}", "{tech} and {tech2}"],
    "concept": ["{Concept}", "{Concept} explained", "{Concept} with {tech}", "Thinking about {concept}"],
    "challenge": [
        "{Adj} {noun} under load",
        "When the {noun} {verb}",
        "Fixing a {adj} {noun} in {tech}",
        "{tech} {noun} {verb}",
    ],
    "practice": ["Keep {noun}s {adj}", "Review {concept} early", "Make {concept} boring", "A habit for {concept}"],
}
SENTENCES = [
    "When the {noun} {verb}, {concept} usually matters more than raw hardware.",
    "We measured a p95 of {number} ms before moving the {noun} behind {tech}.",
    "The fix was to add {token} where the {noun} is built, which removed most of the {adj} work.",
    "A {adj} {noun} is easier to reason about than a clever one.",
    "{Tech} makes {concept} straightforward, as long as every {noun} is {adj}.",
    "Under load the {noun} {verb}; the logs showed {number} retries per minute.",
    "Start with {concept}, then look at the {noun} and only then at {tech2}.",
    "Each {noun} carries a {noun2}, so a {adj} {noun2} shows up in every request.",
    "We wrote a test that reproduces the {adj} {noun} before changing anything.",
    "The documentation of {tech} describes {concept}, but not how it interacts with the {noun}.",
    "Running {token} locally made the difference visible in seconds.",
    "After the change the {noun} handled {number} requests per second on two cores.",
    "Keep the {noun} small: a {adj} {noun2} hides bugs that {concept} would expose.",
    "In review we asked whether the {noun} needs to be {adj} at all.",
    "{Tech2} was considered, but {concept} with {tech} was simpler to operate.",
    "The {noun} {verb} only when {concept} is switched off, which took a day to notice.",
    "Set a timeout on every {noun}; an unbounded {noun2} eventually {verb}.",
    "Graphs of the {noun} over a week showed the pattern clearly.",
    "We moved the {adj} part into a {noun} and kept the {noun2} {adj2}.",
    "Most of the cost was in the {noun}, not in {tech} itself.",
    "Naming the {noun} after what it means made the code review much shorter.",
    "Logging the {noun2} with a request id turned a guess into a measurement.",
]
CODE_TEMPLATES = [
    (
        "python",
        "def {fn}({arg}):\n"
        '    """{Concept} for one {noun}."""\n'
        "    {var} = {model}.objects.select_related({field!r}).filter(active=True)\n"
        "    return [item.{field} for item in {var}[:{number}]]\n",
    ),
    (
        "python",
        "async def {fn}(session, {arg}):\n"
        '    async with session.get(f"/api/{{{arg}}}") as response:\n'
        "        response.raise_for_status()\n"
        "        return await response.json()\n",
    ),
    ("bash", "docker-compose up -d {service}\ndocker-compose logs -f {service} | grep -i {word}\n"),
    ("sql", "EXPLAIN ANALYZE\nSELECT {field}, count(*)\nFROM {table}\nWHERE {field} > {number}\nGROUP BY {field};\n"),
    (
        "yaml",
        'services:\n  {service}:\n    image: {service}:latest\n    environment:\n      MAX_CONNECTIONS: "{number}"\n',
    ),
]
IDENTIFIERS = ["order", "invoice", "user", "report", "product", "payment", "session", "event", "job", "ticket"]
ACTIONS = ["fetch", "load", "sync", "build", "parse", "render", "retry", "flush", "index", "export", "import", "merge"]
PEOPLE = [
    "Ana", "Bruno", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kofi", "Lena", "Mateo",
    "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tomas", "Uma", "Viktor", "Wen", "Yusuf", "Zofia",
]  # fmt: skip
EXTRA_SENTENCES = [
    "In the {project} service, {ident}() {verb} whenever the {noun} is {adj}.",
    "{person} traced the {noun} to `{ident}` in the {project} codebase.",
    "The {project} dashboard showed {codename} errors right after the {noun} change.",
    "We renamed `{ident}` to `{ident2}` so that the {noun} reads better.",
    "{person} asked the {codename} team how their {noun} handles {concept}.",
]
SENTENCES += EXTRA_SENTENCES


def _codenames(count: int = 20_000) -> list[str]:
    """Made-up project and customer names: the long tail of rare words real notes are full of."""
    rng = random.Random(7)
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "n", "r", "s", "l", "x"]
    names: dict[str, None] = {}
    while len(names) < count:
        syllables = rng.randint(2, 3)
        name = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables)) + rng.choice(codas)
        names[name.capitalize()] = None
    return list(names)


CODENAMES = _codenames()
# Zipf-like: a few names recur across many entries, most appear in one or two.
CODENAME_CUM_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(CODENAMES))))


def _codename(rng: random.Random) -> str:
    return rng.choices(CODENAMES, cum_weights=CODENAME_CUM_WEIGHTS)[0]


def _fill(rng: random.Random, template: str, context: dict | None = None) -> str:
    """Fill the named slots of a template with words drawn from the vocabularies."""
    tech, tech2 = rng.sample(TECHS, 2)
    concept = rng.choice(CONCEPTS)
    noun, noun2 = rng.sample(NOUNS, 2)
    adj, adj2 = rng.sample(ADJECTIVES, 2)
    values = {
        "tech": tech,
        "tech2": tech2,
        "Tech": tech,
        "Tech2": tech2,
        "concept": concept,
        "Concept": concept[0].upper() + concept[1:],
        "noun": noun,
        "noun2": noun2,
        "adj": adj,
        "Adj": adj.capitalize(),
        "adj2": adj2,
        "verb": rng.choice(VERBS),
        "token": rng.choice(TOKENS),
        "number": rng.choice([3, 12, 40, 85, 120, 250, 480, 900, 1500, 4000]),
        "codename": _codename(rng),
        "ident": f"{rng.choice(ACTIONS)}_{rng.choice(IDENTIFIERS)}_{rng.choice(NOUNS).split()[0]}",
        "ident2": f"{rng.choice(ACTIONS)}_{rng.choice(IDENTIFIERS)}s",
        "project": "Atlas",
        "person": rng.choice(PEOPLE),
        **(context or {}),
    }
    return template.format(**values)


def _code_block(rng: random.Random) -> str:
    language, template = rng.choice(CODE_TEMPLATES)
    ident = rng.choice(IDENTIFIERS)
    code = template.format(
        fn=f"load_{ident}s",
        arg=f"{ident}_id",
        var=f"{ident}s",
        model=ident.capitalize(),
        field=rng.choice(["created_at", "status", "owner", "total", "region"]),
        number=rng.choice([10, 50, 100, 500]),
        service=rng.choice(["web", "worker", "db", "cache", "broker"]),
        word=rng.choice(["error", "timeout", "retry", "warning"]),
        table=f"{ident}s",
        noun=rng.choice(NOUNS),
        Concept=rng.choice(CONCEPTS).capitalize(),
    )
    return f"```{language}\n{code}```"


def _paragraph(rng: random.Random, context: dict) -> str:
    return " ".join(_fill(rng, rng.choice(SENTENCES), context) for _ in range(rng.randint(3, 6)))


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def make_entry(index: int, seed: int = DEFAULT_SEED) -> tuple[str, str]:
    """(relative path, Markdown text) of entry number `index`."""
    rng = random.Random(seed * 1_000_003 + index)
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    title = _fill(rng, rng.choice(TITLE_TEMPLATES[kind]))
    title = title[0].upper() + title[1:]
    tags: list[str] = []
    wanted = rng.randint(3, 6)
    while len(tags) < wanted:
        tag = rng.choices(TAGS, weights=TAG_WEIGHTS)[0]
        if tag not in tags:
            tags.append(tag)
    date = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(6 * 365))
    summary = _fill(rng, rng.choice(SENTENCES))
    target = rng.randint(300, 800)
    context = {"project": _codename(rng)}  # one project per entry, as in real notes
    blocks = [_paragraph(rng, context)]
    headings = rng.sample(HEADINGS, 6)
    while _words("\n".join(blocks)) < target:
        if headings and rng.random() < 0.35:
            blocks.append(f"## {headings.pop()}")
        roll = rng.random()
        if roll < 0.08:
            blocks.append(_code_block(rng))
        elif roll < 0.18:
            items = (_fill(rng, rng.choice(SENTENCES), context) for _ in range(rng.randint(2, 4)))
            blocks.append("\n".join(f"- {item}" for item in items))
        else:
            blocks.append(_paragraph(rng, context))
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
    relative = f"{KIND_FOLDERS[kind]}/{slug}-{index:05d}.md"
    front = "\n".join(
        [
            "---",
            f"title: {_yaml_string(title)}",
            f"summary: {_yaml_string(summary)}",
            f"kind: {kind}",
            f"tags: [{', '.join(tags)}]",
            f"date: {date.isoformat()}",
            "---",
        ]
    )
    return relative, front + "\n\n" + "\n\n".join(blocks) + "\n"


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def generate(count: int, outdir, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write `count` entries under `outdir` and return their paths."""
    return _write_all(make_entry, count, outdir, seed)


def _write_all(make, count: int, outdir, seed: int) -> list[Path]:
    """Write notes 0..count-1 made by `make(index, seed)` under `outdir`."""
    root = Path(outdir)
    paths = []
    for index in range(count):
        relative, text = make(index, seed)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


# --- the code-heavy corpus ----------------------------------------------------------------------
# Long notes like a developer's TIL collection: 3-8 KB each, 4-6 fenced blocks of realistic code in
# several languages, a table, nested and ordered lists, links to earlier notes, in topic folders;
# front matter on some, a `# Title` line on the others. Note i depends only on the seed and i, and
# links only to notes before it, so any prefix of the corpus is a corpus with no broken links.

CODE_TOPICS = {
    "python": ("Python", ["python", "bash", "toml"]),
    "javascript": ("JavaScript", ["javascript", "typescript", "json"]),
    "postgres": ("PostgreSQL", ["sql", "bash"]),
    "go": ("Go", ["go", "bash", "yaml"]),
    "rust": ("Rust", ["rust", "toml", "bash"]),
    "docker": ("Docker", ["dockerfile", "yaml", "bash"]),
    "kubernetes": ("Kubernetes", ["yaml", "bash"]),
    "git": ("git", ["bash", "ini"]),
    "ci": ("CI", ["yaml", "bash"]),
    "ruby": ("Ruby", ["ruby", "sql"]),
}
CODE_TITLES = [
    "{Action} {idents} with {topic} without surprises",
    "{topic}: {concept} for the {noun}",
    "Use {token} to fix a {adj} {noun}",
    "{Concept} in {topic}, step by step",
    "How {topic} handles {concept}",
    "Debugging a {adj} {noun} in {topic}",
    "{topic} {noun} that {verb}",
    "A {adj} way to {action} {idents} in {topic}",
]
# Snippets with @slot@ placeholders (braces and dollars are code here, not template syntax).
CODE_SNIPPETS = {
    "python": [
        '''import functools
import logging
import random
import time

log = logging.getLogger(__name__)


def retry(attempts=@number@, base_delay=0.2, exceptions=(ConnectionError, TimeoutError)):
    """Retry a flaky call with exponential backoff and jitter."""

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except exceptions as error:
                    if attempt == attempts:
                        raise
                    delay = base_delay * 2 ** (attempt - 1) + random.uniform(0, 0.1)
                    log.warning("%s failed (%s), retry %d in %.2fs", func.__name__, error, attempt, delay)
                    time.sleep(delay)

        return wrapper

    return decorator


@retry(attempts=5)
def @name@(client, @ident@_id):
    return client.get(f"/api/@idents@/{@ident@_id}", timeout=@seconds@).json()
''',
        """import csv
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True)
class @Ident@:
    id: int
    @field@: str
    amount: Decimal


def read_@idents@(path: Path) -> list[@Ident@]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            @Ident@(id=int(row["id"]), @field@=row["@field@"], amount=Decimal(row["amount"]))
            for row in csv.DictReader(handle)
            if row["amount"]
        ]


if __name__ == "__main__":
    rows = read_@idents@(Path("@idents@.csv"))
    print(sum(row.amount for row in rows), "over", len(rows), "@idents@")
""",
        """from django.db import models
from django.db.models import Count, Q


class @Ident@QuerySet(models.QuerySet):
    def active(self):
        return self.filter(archived_at__isnull=True)

    def with_counts(self):
        return self.annotate(
            open_count=Count("items", filter=Q(items__@field@="open")),
        ).select_related("owner").prefetch_related("tags")


class @Ident@(models.Model):
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="@idents@")
    @field@ = models.CharField(max_length=@number@, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = @Ident@QuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["owner", "@field@"])]
""",
        """import pytest


@pytest.fixture
def @ident@(db, django_user_model):
    owner = django_user_model.objects.create_user("@codename@", password="secret")
    return owner.@idents@.create(@field@="open")


@pytest.mark.parametrize(
    ("@field@", "expected"),
    [
        ("open", 1),     # the default state is listed
        ("closed", 0),   # closed ones are hidden
    ],
)
def test_@name@(client, @ident@, @field@, expected):
    @ident@.@field@ = @field@
    @ident@.save()
    response = client.get("/@idents@/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == expected
""",
    ],
    "javascript": [
        """async function @nameCamel@(url, { timeoutMs = @number@0, retries = 2 } = {}) {
  for (let attempt = 0; attempt <= retries; attempt++) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const response = await fetch(url, { signal: controller.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
      return await response.json();
    } catch (error) {
      if (attempt === retries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 2 ** attempt * 100));
    } finally {
      clearTimeout(timer);
    }
  }
}

@nameCamel@("/api/@idents@?page=1").then((data) => console.log(data.results.length));
""",
        """function debounce(fn, wait = @number@) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(null, args), wait);
  };
}

const input = document.querySelector("#@ident@-search");
const list = document.querySelector("#@ident@-results");

input.addEventListener(
  "input",
  debounce(async (event) => {
    const q = encodeURIComponent(event.target.value.trim());
    if (!q) return (list.innerHTML = "");
    const response = await fetch(`/api/@idents@?q=${q}`);
    const { results } = await response.json();
    list.replaceChildren(...results.map((r) => Object.assign(document.createElement("li"), { textContent: r.@field@ })));
  }),
);
""",
        """const express = require("express");
const app = express();

app.use(express.json({ limit: "@number@kb" }));

app.get("/@idents@/:id", async (req, res, next) => {
  try {
    const @ident@ = await db.@idents@.findOne({ where: { id: Number(req.params.id) } });
    if (!@ident@) return res.status(404).json({ error: "not found" });
    res.set("Cache-Control", "max-age=60").json(@ident@);
  } catch (error) {
    next(error);
  }
});

app.listen(@port@, "127.0.0.1", () => console.log("listening on @port@"));
""",
    ],
    "typescript": [
        """export interface @Ident@ {
  id: number;
  @fieldCamel@: string;
  tags: string[];
  createdAt: Date;
}

export function groupBy<T, K extends PropertyKey>(items: readonly T[], key: (item: T) => K): Record<K, T[]> {
  return items.reduce((groups, item) => {
    const k = key(item);
    (groups[k] ||= []).push(item);
    return groups;
  }, {} as Record<K, T[]>);
}

const by@FieldCamel@ = groupBy<@Ident@, string>(@idents@, (x) => x.@fieldCamel@);
console.table(Object.entries(by@FieldCamel@).map(([k, v]) => ({ k, count: v.length })));
""",
        """type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export async function load@Ident@(id: number): Promise<Result<@Ident@>> {
  const response = await fetch(`/api/@idents@/${id}`);
  if (response.status === 404) {
    return { ok: false, error: `no @ident@ ${id}` };
  }
  const value = (await response.json()) as @Ident@;
  return { ok: true, value };
}
""",
    ],
    "json": [
        """{
  "name": "@codename@-@ident@-service",
  "version": "1.@number@.0",
  "private": true,
  "type": "module",
  "scripts": {
    "dev": "vite --port @port@",
    "build": "tsc && vite build",
    "test": "vitest run",
    "lint": "eslint . --max-warnings 0"
  },
  "dependencies": {
    "express": "^4.19.2",
    "pg": "^8.11.3"
  },
  "devDependencies": {
    "typescript": "^5.4.0",
    "vitest": "^1.5.0"
  }
}
""",
    ],
    "sql": [
        """CREATE TABLE @idents@ (
    id          bigserial PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    @field@     text NOT NULL DEFAULT 'open',
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX CONCURRENTLY @idents@_owner_created_idx
    ON @idents@ (owner_id, created_at DESC)
    WHERE @field@ <> 'archived';
""",
        """WITH ranked AS (
    SELECT
        owner_id,
        id,
        amount,
        row_number() OVER (PARTITION BY owner_id ORDER BY created_at DESC) AS rn,
        sum(amount) OVER (PARTITION BY owner_id) AS total
    FROM @idents@
    WHERE created_at > now() - interval '@number@ days'
)
SELECT owner_id, id AS latest_id, amount, total
FROM ranked
WHERE rn = 1
ORDER BY total DESC
LIMIT 20;
""",
        """EXPLAIN (ANALYZE, BUFFERS)
SELECT u.email, count(o.id) AS @idents@
FROM users AS u
JOIN @idents@ AS o ON o.owner_id = u.id
WHERE o.@field@ = 'open'
  AND o.created_at >= date_trunc('month', now())
GROUP BY u.email
HAVING count(o.id) > @number@;
""",
        """SELECT pid,
       now() - query_start AS duration,
       wait_event_type,
       left(query, 80) AS query
FROM pg_stat_activity
WHERE state <> 'idle'
  AND now() - query_start > interval '@seconds@ seconds'
ORDER BY duration DESC;

-- then, for the worst offender:
SELECT pg_cancel_backend(@number@@number@);
""",
    ],
    "bash": [
        """#!/usr/bin/env bash
set -euo pipefail

backup_dir="/var/backups/@service@"
stamp="$(date +%Y%m%d-%H%M%S)"
trap 'echo "backup failed at line $LINENO" >&2' ERR

mkdir -p "$backup_dir"
pg_dump --format=custom --dbname="$DATABASE_URL" --file="$backup_dir/@idents@-$stamp.dump"
find "$backup_dir" -name '*.dump' -mtime +@number@ -print -delete
echo "kept $(ls "$backup_dir" | wc -l) backups"
""",
        """# every log line with a request id that took longer than a second
grep -h 'duration_ms=' /var/log/@service@/*.log \\
  | awk -F'duration_ms=' '$2 + 0 > 1000 { print $0 }' \\
  | grep -o 'request_id=[a-f0-9-]*' \\
  | sort | uniq -c | sort -rn | head -@number@
""",
        """for file in $(git diff --name-only origin/main...HEAD -- '*.py'); do
  echo "== $file"
  ruff check "$file" || status=1
done
exit "${status:-0}"
""",
        """docker compose up -d @service@
docker compose logs -f --since 10m @service@ | grep -i @word@
docker compose exec @service@ sh -c 'ps aux --sort=-%mem | head -5'
""",
        """git log --since="@number@ days ago" --format='%an' | sort | uniq -c | sort -rn
git bisect start HEAD v1.@number@.0
git bisect run ./scripts/check-@ident@.sh
git bisect reset
""",
    ],
    "yaml": [
        """name: tests
on:
  push:
    branches: [main]
  pull_request:

jobs:
  test:
    runs-on: ubuntu-latest
    services:
      postgres:
        image: postgres:16
        env:
          POSTGRES_PASSWORD: postgres
        ports: ["5432:5432"]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - run: pip install -r requirements-dev.txt
      - run: pytest -x -q --maxfail=@number@
        env:
          DATABASE_URL: postgres://postgres:postgres@localhost:5432/postgres
""",
        """services:
  @service@:
    build: .
    command: gunicorn -c gunicorn.conf.py wsgi:app
    ports:
      - "127.0.0.1:@port@:8000"
    environment:
      DATABASE_URL: postgres://app:app@db:5432/@idents@
      MAX_CONNECTIONS: "@number@"
    depends_on:
      db:
        condition: service_healthy
  db:
    image: postgres:16
    volumes:
      - db-data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "app"]
      interval: 5s

volumes:
  db-data:
""",
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: @service@
  labels: {app: @service@}
spec:
  replicas: 3
  selector:
    matchLabels: {app: @service@}
  template:
    metadata:
      labels: {app: @service@}
    spec:
      containers:
        - name: @service@
          image: registry.example.com/@codename@/@service@:1.@number@
          ports: [{containerPort: @port@}]
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {memory: 256Mi}
          readinessProbe:
            httpGet: {path: /healthz, port: @port@}
            periodSeconds: 5
""",
    ],
    "go": [
        """package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"time"
)

type @Ident@ struct {
	ID     int64  `json:"id"`
	@FieldCamel@ string `json:"@field@"`
}

func @nameCamel@Handler(store Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), @seconds@*time.Second)
		defer cancel()
		items, err := store.List@Idents@(ctx)
		if err != nil {
			log.Printf("list @idents@: %v", err)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(items)
	}
}
""",
        """func process@Idents@(ctx context.Context, jobs <-chan @Ident@, workers int) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := 0; i < workers; i++ {
		g.Go(func() error {
			for job := range jobs {
				select {
				case <-ctx.Done():
					return ctx.Err()
				default:
				}
				if err := handle(ctx, job); err != nil {
					return fmt.Errorf("@ident@ %d: %w", job.ID, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
""",
    ],
    "rust": [
        """use std::collections::HashMap;
use std::fs;

#[derive(Debug, Clone, PartialEq)]
struct @Ident@ {
    id: u64,
    @field@: String,
}

fn parse_line(line: &str) -> Result<@Ident@, String> {
    let (id, rest) = line.split_once(',').ok_or_else(|| format!("no comma in {line:?}"))?;
    let id = id.trim().parse::<u64>().map_err(|e| e.to_string())?;
    Ok(@Ident@ { id, @field@: rest.trim().to_owned() })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = fs::read_to_string("@idents@.csv")?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for item in text.lines().skip(1).filter_map(|l| parse_line(l).ok()) {
        *counts.entry(item.@field@).or_default() += 1;
    }
    println!("{counts:#?}");
    Ok(())
}
""",
        """impl @Ident@Cache {
    pub fn get_or_load<F>(&mut self, key: u64, load: F) -> &@Ident@
    where
        F: FnOnce(u64) -> @Ident@,
    {
        if self.entries.len() >= @number@ {
            self.entries.clear();
        }
        self.entries.entry(key).or_insert_with(|| load(key))
    }
}
""",
    ],
    "toml": [
        """[project]
name = "@codename@-@idents@"
version = "0.@number@.0"
requires-python = ">=3.11"
dependencies = ["httpx==0.27.0", "pydantic==2.7.1"]

[tool.ruff]
line-length = 120

[tool.pytest.ini_options]
addopts = "-x -q"
filterwarnings = ["error"]
""",
        """[package]
name = "@ident@-tool"
version = "0.@number@.0"
edition = "2021"

[dependencies]
serde = { version = "1", features = ["derive"] }
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }

[profile.release]
lto = true
codegen-units = 1
""",
    ],
    "dockerfile": [
        """FROM python:3.11-slim AS build
WORKDIR /app
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

FROM python:3.11-slim
RUN useradd --create-home app
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
COPY . .
USER app
EXPOSE @port@
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
""",
    ],
    "ini": [
        """[alias]
    lg = log --graph --oneline --decorate --all
    fixup = commit --fixup
    undo = reset --soft HEAD~1
[rebase]
    autosquash = true
    autostash = true
[pull]
    ff = only
[diff]
    algorithm = histogram
""",
    ],
    "ruby": [
        """class @Ident@ < ApplicationRecord
  belongs_to :owner, class_name: "User"
  has_many :items, dependent: :destroy

  scope :open, -> { where(@field@: "open") }
  scope :recent, ->(days = @number@) { where("created_at > ?", days.days.ago) }

  validates :@field@, inclusion: { in: %w[open closed archived] }

  def self.totals_by_owner
    open.recent.group(:owner_id).sum(:amount)
  end
end
""",
    ],
}
TABLE_HEADERS = [
    ("Option", "When to use it", "Cost"),
    ("Approach", "Latency (ms)", "Memory", "Notes"),
    ("Command", "What it does"),
    ("Setting", "Default", "We use"),
]
OUTPUT_BLOCKS = [
    "$ time ./run-@ident@.sh\nprocessed @number@ @idents@\n\nreal    0m@seconds@.412s\nuser    0m1.087s\nsys     0m0.151s\n",
    " owner_id | latest_id | amount | total\n----------+-----------+--------+-------\n       12 |      4211 |  19.90 | 512.40\n"
    "        7 |      4209 |   5.00 | 230.15\n(2 rows)\n",
]


def _code_values(rng: random.Random) -> dict[str, str]:
    """Names for one snippet: one identifier family, so the code reads as if from one project."""
    ident = rng.choice(IDENTIFIERS)
    field = rng.choice(["status", "region", "owner_name", "state", "currency", "channel"])
    action = rng.choice(ACTIONS)
    camel_field = "".join(part.capitalize() for part in field.split("_"))
    return {
        "ident": ident,
        "idents": f"{ident}s",
        "Ident": ident.capitalize(),
        "Idents": f"{ident.capitalize()}s",
        "name": f"{action}_{ident}s",
        "nameCamel": f"{action}{ident.capitalize()}s",
        "field": field,
        "FieldCamel": camel_field,
        "fieldCamel": camel_field[0].lower() + camel_field[1:],
        "number": str(rng.choice([3, 5, 8, 10, 25, 50, 100, 250])),
        "seconds": str(rng.choice([2, 5, 10, 30])),
        "port": str(rng.choice([3000, 5000, 8000, 8080, 9000])),
        "service": rng.choice(["web", "worker", "api", "scheduler", "billing"]),
        "word": rng.choice(["error", "timeout", "retry", "warning", "deadlock"]),
        "codename": _codename(rng).lower(),
    }


def _snippet(rng: random.Random, language: str, used: set[str]) -> str:
    """One fenced block of `language`, its names filled in; a note shows each snippet at most once."""
    fresh = [snippet for snippet in CODE_SNIPPETS[language] if snippet not in used] or CODE_SNIPPETS[language]
    template = rng.choice(fresh)
    used.add(template)
    return f"```{language}\n{_substitute(template, _code_values(rng))}```"


def _substitute(template: str, values: dict[str, str]) -> str:
    """Fill the @slot@ placeholders of a snippet."""
    return re.sub(r"@(\w+)@", lambda m: values[m.group(1)], template)


def _code_heavy_head(index: int, seed: int) -> tuple[str, str, str]:
    """(topic, title, relative path) of note `index`: what other notes need to link to it."""
    rng = random.Random(seed * 1_000_033 + index * 7 + 3)
    topic = rng.choice(list(CODE_TOPICS))
    values = _code_values(rng)
    title = _fill(
        rng,
        rng.choice(CODE_TITLES),
        {
            "topic": CODE_TOPICS[topic][0],
            "action": rng.choice(ACTIONS),
            "Action": rng.choice(ACTIONS).capitalize(),
            **values,
        },
    )
    title = title[0].upper() + title[1:]
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
    return topic, title, f"{topic}/{slug}-{index:05d}.md"


def _table(rng: random.Random, context: dict) -> str:
    """A Markdown table comparing a few options, as notes do."""
    header = rng.choice(TABLE_HEADERS)
    rows = []
    for _ in range(rng.randint(3, 6)):
        cells = [f"`{rng.choice(TOKENS)}`", _fill(rng, "{adj} {noun}", context)]
        cells += [str(rng.choice([1, 4, 12, 40, 150, 900])) for _ in header[2:]]
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _nested_list(rng: random.Random, context: dict) -> str:
    """Bullets with sub-bullets (four spaces, as Python-Markdown and mkdocs want them)."""
    lines = []
    for _ in range(rng.randint(2, 4)):
        lines.append(f"- {_fill(rng, rng.choice(SENTENCES), context)}")
        for _ in range(rng.randint(0, 3)):
            lines.append(f"    - {_fill(rng, '`{token}` when the {noun} is {adj}', context)}")
    return "\n".join(lines)


def _ordered_list(rng: random.Random, context: dict) -> str:
    """Numbered steps."""
    steps = [_fill(rng, rng.choice(SENTENCES), context) for _ in range(rng.randint(3, 6))]
    return "\n".join(f"{number}. {step}" for number, step in enumerate(steps, 1))


def _links(rng: random.Random, index: int, seed: int, folder: str) -> list[str]:
    """Links to 2-4 earlier notes: relative file links and `[[topic/name]]` wiki links."""
    if index == 0:
        return []
    links = []
    for other in sorted(rng.sample(range(index), min(index, rng.randint(2, 4)))):
        _, title, relative = _code_heavy_head(other, seed)
        if rng.random() < 0.7:
            target = relative.split("/", 1)[1] if relative.startswith(folder + "/") else f"../{relative}"
            links.append(f"[{title}]({target})")
        else:
            links.append(f"[[{relative.removesuffix('.md')}]]")
    return links


def make_code_heavy_entry(index: int, seed: int = DEFAULT_SEED) -> tuple[str, str]:
    """(relative path, Markdown text) of code-heavy note number `index`."""
    topic, title, relative = _code_heavy_head(index, seed)
    rng = random.Random(seed * 1_000_037 + index)
    context = {"project": _codename(rng)}
    languages = CODE_TOPICS[topic][1]
    wanted = [rng.choice(languages), *(rng.choice(list(CODE_SNIPPETS)) for _ in range(rng.randint(2, 4)))]
    wanted.insert(rng.randint(1, len(wanted)), rng.choice(languages))
    headings = rng.sample(HEADINGS, len(wanted) + 3)
    links = _links(rng, index, seed, topic)
    blocks = [_paragraph(rng, context)]
    extras = [_table, _nested_list, _ordered_list]
    used: set[str] = set()
    shown_output = rng.randrange(len(wanted) * 4)  # a quarter of the notes show a command's output
    rng.shuffle(extras)
    for number, language in enumerate(wanted):
        blocks.append(f"## {headings.pop()}")
        lead = " ".join(_fill(rng, rng.choice(SENTENCES), context) for _ in range(rng.randint(1, 3)))
        if links and rng.random() < 0.5:
            lead += f" See {links[number % len(links)]}."
        blocks += [lead, _snippet(rng, language, used)]
        if number == shown_output:
            output = _substitute(rng.choice(OUTPUT_BLOCKS), _code_values(rng))
            blocks.append(f"```text\n{output}```")
        if extras:
            blocks.append(extras.pop()(rng, context))
    target = rng.randint(3000, 7300)  # what follows adds up to 700 bytes more
    while len("\n\n".join(blocks).encode()) < target - 400:
        if rng.random() < 0.3:
            blocks.append(f"## {headings.pop()}" if headings else _nested_list(rng, context))
        blocks.append(_paragraph(rng, context))
    if links:
        blocks += ["## See also", "\n".join(f"- {link}" for link in links)]
    body = "\n\n".join(blocks) + "\n"
    if rng.random() < 0.5:  # half the notes have front matter, the others only a title line
        tags = list(dict.fromkeys([topic, *(language for language in wanted[:2])]))
        date = dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(7 * 365))
        front = f"---\ntitle: {_yaml_string(title)}\ntags: [{', '.join(tags)}]\ndate: {date.isoformat()}\n---\n\n"
        return relative, front + body
    return relative, f"# {title}\n\n{body}"


def generate_code_heavy(count: int, outdir, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write `count` code-heavy notes under `outdir` and return their paths."""
    return _write_all(make_code_heavy_entry, count, outdir, seed)


def main(argv=None) -> None:
    """Command line: N OUTDIR [--seed SEED] [--code-heavy]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many entries to write")
    parser.add_argument("outdir", help="folder to write them into (created if missing)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--code-heavy", action="store_true", help="long notes full of code (see make_code_heavy_entry)")
    args = parser.parse_args(argv)
    paths = (generate_code_heavy if args.code_heavy else generate)(args.count, args.outdir, args.seed)
    words = sum(_words(p.read_text(encoding="utf-8")) for p in paths)
    print(f"wrote {len(paths)} entries ({words} words) to {args.outdir}")


if __name__ == "__main__":
    main()
