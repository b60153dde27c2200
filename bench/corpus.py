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
    root = Path(outdir)
    paths = []
    for index in range(count):
        relative, text = make_entry(index, seed)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main(argv=None) -> None:
    """Command line: N OUTDIR [--seed SEED]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="how many entries to write")
    parser.add_argument("outdir", help="folder to write them into (created if missing)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    paths = generate(args.count, args.outdir, args.seed)
    words = sum(_words(p.read_text(encoding="utf-8")) for p in paths)
    print(f"wrote {len(paths)} entries ({words} words) to {args.outdir}")


if __name__ == "__main__":
    main()
