"""Whoosh full-text search, in rooms whose imports run one way:

analysis (words, schema, documents) → store (build, swap, open) → searchers (per worker)
→ parsing (query text) → engine (running a search). The importer uses analysis and store;
views use engine.
"""
