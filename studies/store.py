"""Results on disk: written atomically after every finished unit, so an interrupted study
resumes without recomputing or duplicating rows."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

KEY = ["sde", "problem", "sampler", "grid", "steps", "seed", "dtype", "device"]


class ResultStore:
    def __init__(self, directory: str | Path, name: str = "results.csv"):
        self.directory = Path(directory)
        self.path = self.directory / name
        self.frame = pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()

    def done(self, unit: dict) -> bool:
        if self.frame.empty:
            return False
        mask = pd.Series(True, index=self.frame.index)
        for column in KEY:
            mask &= self.frame[column].astype(str) == str(unit[column])
        return bool(mask.any())

    def add(self, rows: list[dict]) -> None:
        self.frame = pd.concat([self.frame, pd.DataFrame(rows)], ignore_index=True)
        self._write()

    def _write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".results-", suffix=".csv")
        with os.fdopen(handle, "w") as stream:
            self.frame.to_csv(stream, index=False)
        os.chmod(temporary, 0o644)
        os.replace(temporary, self.path)

    def write_parquet(self) -> Path | None:
        """Also write Parquet when a Parquet engine is installed; None otherwise."""
        try:
            path = self.path.with_suffix(".parquet")
            self.frame.to_parquet(path)
            return path
        except ImportError:
            return None
