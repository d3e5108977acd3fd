"""Prometora Webhooks benchmark suite (issue 6).

Every scenario runs with one command, ``python -m bench.run SCENARIO`` (see ``bench/run.py``),
prints a JSON document and one summary line per scenario, and writes nothing outside its own
temporary folder. The receiver is this package's own minimal asyncio HTTPS server, running in a
separate process pinned to its own core; the service is started as a user starts it
(``prometora-webhooks serve`` on SQLite, ``api`` + ``worker`` processes on PostgreSQL).
"""
