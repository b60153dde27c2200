"""Search aliases: each group's names find one another. Edit freely; no reindex needed.

A multi-word name is searched as a phrase.
"""

ALIASES = [
    ("postgresql", "postgres", "psql", "pg"),
    ("kubernetes", "k8s", "kube"),
    ("drf", "django rest framework"),
    ("javascript", "js", "ecmascript"),
    ("typescript", "ts"),
    ("rabbitmq", "rabbit", "mq", "amqp"),
    ("mysql", "mariadb"),
    ("redis", "valkey"),
    ("python", "py"),
    ("ci/cd", "cicd", "continuous integration", "continuous delivery"),
    ("openapi", "swagger"),
    ("docker compose", "docker-compose"),
    ("async", "asynchronous", "asyncio", "async/await"),
    ("erd", "entity relationship diagram", "er diagram"),
    ("orm", "object relational mapper"),
    ("db", "database"),
    ("auth", "authentication"),
    ("authz", "authorization"),
    ("github actions", "gha"),
]
