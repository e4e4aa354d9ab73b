"""The release registry: the writer (layout, links, atomic writes) and the reader (dir or HTTP)."""
