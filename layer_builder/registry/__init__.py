"""The release registry: its checkout's names and documents (``layout``), the writer and its lock,
and the reader (a directory or HTTP)."""
