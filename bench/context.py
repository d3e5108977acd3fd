"""What every scenario gets: the temp workspace, the core plan, certificates, options, and the
shared receiver and PostgreSQL cluster (started on first use, stopped at the end)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Certs
from .pg import PgCluster
from .procs import Cores
from .receiver import Receiver


@dataclass
class Context:
    workdir: Path
    certs: Certs
    cores: Cores
    db: str = "sqlite"
    quick: bool = False
    opts: dict[str, Any] = field(default_factory=dict)
    _receiver: Receiver | None = None
    _pg: PgCluster | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def opt(self, name: str, default: Any) -> Any:
        value = self.opts.get(name)
        return default if value is None else value

    def next_id(self) -> int:
        return next(self._ids)

    def receiver(self) -> Receiver:
        if self._receiver is None:
            self._receiver = Receiver(
                self.workdir, self.certs.cert, self.certs.key, self.cores.receiver
            )
        return self._receiver

    def pg(self) -> PgCluster:
        if self._pg is None:
            self._pg = PgCluster.start(
                self.workdir / "pg",
                self.cores.others,
                statements=bool(self.opt("pg_statements", False)),
            )
        return self._pg

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None
