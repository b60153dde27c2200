"""`url_for` for templates, remembered: a page builds dozens of links, most of them the same on every page.

Building a URL through Werkzeug's map costs tens of microseconds; a search page built about fifty.
A path-only URL depends on the endpoint, its values and the request's script root (and, for an
endpoint named relative to the blueprint, on the blueprint), so those are the key. External URLs
(which name the host) are always built anew, and so is everything in debug mode, where static
files and their fingerprints change under a running server.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from flask import Flask, request, url_for

MAX_URLS = 4096


class UrlCache:
    """Path-only URLs built for this process, least recently used dropped first."""

    def __init__(self, app: Flask, size: int = MAX_URLS):
        self.app = app
        self.size = size
        self._urls: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def url_for(self, endpoint: str, **values) -> str:
        """What `flask.url_for` gives, from the cache when the same link was built before."""
        if self.app.debug or any(name.startswith("_") for name in values):
            return url_for(endpoint, **values)
        blueprint = request.blueprint if endpoint.startswith(".") else None
        try:
            key = (request.script_root, blueprint, endpoint, tuple(sorted(values.items())))
            hash(key)
        except TypeError:  # an unhashable value (a list of tags): build it
            return url_for(endpoint, **values)
        with self._lock:
            found = self._urls.get(key)
            if found is not None:
                self._urls.move_to_end(key)
                return found
        built = url_for(endpoint, **values)
        with self._lock:
            self._urls[key] = built
            if len(self._urls) > self.size:
                self._urls.popitem(last=False)
        return built
