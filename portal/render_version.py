"""The renderer's version, on its own: file stamps are salted with it, and checking them must not load the renderer."""

#: Bump when the output of `rendering.render` changes, so unchanged files are rendered again.
RENDERER_VERSION = "7"
