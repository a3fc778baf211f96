"""Append-only results store: one JSON line per model x recipe x task x metric (x variant).

Why JSON lines: a sweep appends while it runs, several shards can write their own file, a crash can
at worst leave one torn last line, and `merge` is a dedupe. Durability rules:

1. `append_cell` writes all lines of one cell in ONE `os.write` on an `O_APPEND` descriptor, then
   `fsync`s. Every line carries the cell id and the number of lines of its cell (`group`), so a cell
   counts as done only when all of its lines are present and parse.
2. Reading skips lines that do not parse (a torn write) and records of incomplete cells; `repair()`
   rewrites the file without them (write a temporary file, fsync, rename over the original).
3. Duplicated keys (a cell run twice, merged shards) resolve to the newest record.

Record fields: model, recipe, task, metric, variant, value, stderr, n, category, cell, write (id of
the append that wrote it), group, timestamp, settings (dict), versions (dict).

4. Every line that parses must follow that schema (`check_record`: the fields present, with their types):
   a line without `value`, with a string `group`, ... is a `StoreFormatError` naming the file, the line
   and the field, never a record counted as complete; `repair()` removes such lines.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable, Optional, Union

KEY_FIELDS = ("model", "recipe", "task", "metric", "variant")
REQUIRED_ROW_FIELDS = ("task", "metric", "value")
STRING_FIELDS = (*KEY_FIELDS, "cell", "write")  # required, each a str
OPTIONAL_FIELDS = {"stderr": "number", "n": "number", "category": "str", "timestamp": "str", "settings": "dict",
                   "versions": "dict"}  # may be absent; when present, of this type (numbers and str may be null)


class StoreFormatError(ValueError):
    """A line of a results store parses as JSON but does not follow the record schema."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record) -> Optional[str]:
    """What is wrong with one parsed store line (None when it follows the schema)."""
    if not isinstance(record, dict):
        return f"a record must be a JSON object, got a {type(record).__name__}"
    for name in (*STRING_FIELDS, "value", "group"):
        if name not in record:
            return f"field {name!r} is missing"
    for name in STRING_FIELDS:
        if not isinstance(record[name], str):
            return f"{name}={record[name]!r} must be a str"
    if record["value"] is not None and not _is_number(record["value"]):
        return f"value={record['value']!r} must be a number or null"
    group = record["group"]
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        return f"group={group!r} must be a positive int (the number of lines of its cell)"
    for name, kind in OPTIONAL_FIELDS.items():
        if name not in record:
            continue
        value = record[name]
        ok = {"number": value is None or _is_number(value), "str": value is None or isinstance(value, str),
              "dict": isinstance(value, dict)}[kind]
        if not ok:
            return f"{name}={value!r} must be a {kind}" + ("" if kind == "dict" else " or null")
    return None


def record_key(record: dict) -> tuple:
    """The identity of a result: model x recipe x task x metric x variant."""
    return tuple(str(record.get(field, "")) for field in KEY_FIELDS)


def _jsonable(value):
    """Floats/ints/strings pass; numpy and torch scalars become Python numbers; NaN becomes None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Union[str, Path], text: str) -> None:
    """Replace `path` with `text` atomically: temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ResultStore:
    """A JSON-lines results file. Cheap to open; every read re-parses the file (it is small)."""

    def __init__(self, path: Union[str, Path], must_exist: bool = False):
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path={path!r} must be the path of a .jsonl results file")
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"store path {self.path} is a directory; give a results file (e.g. results/run.jsonl)")
        if must_exist and not self.path.is_file():
            raise FileNotFoundError(f"store {self.path} does not exist (nothing has been run into it yet?)")
        self.skipped_lines = 0  # lines that did not parse on the last read (torn writes)
        self.incomplete_cells = 0  # cells with fewer lines than their group size on the last read
        self.invalid_lines = 0  # lines that parse but break the schema (removed by repair)

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # ---- writing -------------------------------------------------------------------------------
    def append_cell(self, cell_id: str, rows: list, *, model: str, recipe: str, variant: str = "",
                    settings: Optional[dict] = None, versions: Optional[dict] = None) -> list:
        """Store every metric row of one finished cell atomically; returns the records written.

        rows: dicts with at least task, metric, value (optional stderr, n, category)."""
        if not isinstance(cell_id, str) or not cell_id:
            raise ValueError(f"cell_id={cell_id!r} must be a non-empty str")
        for name, value in (("model", model), ("recipe", recipe), ("variant", variant)):
            if not isinstance(value, str):
                raise TypeError(f"{name}={value!r} must be a str")
        for name, value in (("settings", settings), ("versions", versions)):
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{name}={value!r} must be a dict or None")
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"rows must be a list of dicts with task, metric, value; got a {type(rows).__name__}")
        if not rows:
            raise ValueError(f"rows is empty for cell {cell_id!r}: a cell must produce at least one metric")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise TypeError(f"rows[{i}]={row!r} must be a dict with task, metric, value")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        write_id = f"{time.time_ns():x}-{os.getpid():x}"  # groups the lines of this one write
        records = []
        for row in rows:
            missing = [f for f in REQUIRED_ROW_FIELDS if f not in row]
            if missing:
                raise ValueError(f"row {row!r} lacks {missing}; each row needs {REQUIRED_ROW_FIELDS}")
            records.append({
                "model": model, "recipe": recipe, "task": str(row["task"]), "metric": str(row["metric"]),
                "variant": variant, "value": _jsonable(row["value"]), "stderr": _jsonable(row.get("stderr")),
                "n": _jsonable(row.get("n")), "category": row.get("category"), "cell": cell_id,
                "write": write_id, "group": len(rows), "timestamp": stamp, "settings": settings or {},
                "versions": versions or {},
            })
        for i, record in enumerate(records):
            problem = record_problem(record)
            if problem:
                raise ValueError(f"rows[{i}] of cell {cell_id!r}: {problem}")
        keys = [record_key(r) for r in records]
        if len(set(keys)) != len(keys):
            raise ValueError(f"rows of cell {cell_id!r} repeat a (task, metric) pair; each must be unique")
        payload = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
        self._append_bytes(payload.encode("utf-8"))
        return records

    def _append_bytes(self, data: bytes) -> None:
        """One os.write on an O_APPEND fd, then fsync. A torn tail from an earlier crash is cut off first
        by starting on a fresh line, so the new lines always parse."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and not self._ends_with_newline():
                data = b"\n" + data  # the torn line stays alone on its (ignored) line
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    # ---- reading -------------------------------------------------------------------------------
    def _parse(self, strict: bool = True) -> list:
        """Valid records of complete cells, in file order (duplicates kept). A line that parses but breaks the
        schema raises StoreFormatError (strict) or is dropped and counted in `invalid_lines`."""
        self.skipped_lines = 0
        self.incomplete_cells = 0
        self.invalid_lines = 0
        if not self.path.exists():
            return []
        parsed = []
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    self.skipped_lines += 1  # a torn write: its cell is incomplete and reruns
                    continue
                problem = record_problem(record)
                if problem:
                    if strict:
                        raise StoreFormatError(
                            f"store {self.path} line {number}: {problem}; every line is one record with "
                            f"{list(STRING_FIELDS)} (str), value (number or null), group (positive int) and "
                            f"optionally {list(OPTIONAL_FIELDS)}. Remove the line with "
                            f"`dllmq sweep repair {self.path}`")
                    self.invalid_lines += 1
                    continue
                parsed.append(record)
        # a cell is complete when one write of it has all `group` distinct keys present
        seen: dict = {}
        for record in parsed:
            seen.setdefault((record["cell"], record["write"], record["group"]), set()).add(record_key(record))
        complete = {k for k, keys in seen.items() if len(keys) >= k[2]}
        self.incomplete_cells = len(seen) - len(complete)
        return [r for r in parsed if (r["cell"], r["write"], r["group"]) in complete]

    def records(self) -> list:
        """Deduplicated records (newest wins per key), valid and from complete cells only."""
        latest: dict = {}
        for record in self._parse():
            latest[record_key(record)] = record  # file order = write order, so later lines win
        return list(latest.values())

    def done_cells(self) -> set:
        """Ids of the cells whose results are completely stored."""
        return {r["cell"] for r in self._parse()}

    def to_frame(self):
        """The records as a pandas DataFrame (one row per key)."""
        import pandas as pd

        columns = [*KEY_FIELDS, "value", "stderr", "n", "category", "cell", "timestamp", "settings",
                   "versions"]
        return pd.DataFrame(self.records(), columns=columns)

    def __len__(self) -> int:
        return len(self.records())

    # ---- maintenance ---------------------------------------------------------------------------
    def is_valid_jsonl(self) -> bool:
        """True when every non-empty line of the file parses as a JSON object."""
        if not self.path.exists():
            return True
        with open(self.path, "rb") as handle:
            for raw in handle:
                if raw.strip():
                    try:
                        if not isinstance(json.loads(raw.decode("utf-8")), dict):
                            return False
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        return False
        return True

    def repair(self) -> int:
        """Rewrite the file keeping only valid records of complete cells; returns the lines removed."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            before = sum(1 for raw in handle if raw.strip())
        kept = self._parse(strict=False)
        removed = before - len(kept)
        if removed:
            atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        return removed


def merge_stores(sources: Iterable[Union[str, Path, ResultStore]], out: Union[str, Path]) -> ResultStore:
    """Merge shard stores (and `out` itself when it exists) into `out`, deduplicated by key; atomic."""
    out_store = ResultStore(out)
    stores = [out_store] if out_store.path.exists() else []
    stores += [s if isinstance(s, ResultStore) else ResultStore(s) for s in sources]
    for store in stores:
        if not store.path.exists():
            raise FileNotFoundError(f"store {store.path} does not exist")
    latest: dict = {}
    def newness(record: dict) -> tuple:
        return record.get("timestamp", ""), record.get("write", "")

    for store in stores:
        for record in store.records():
            key = record_key(record)
            if key not in latest or newness(record) >= newness(latest[key]):
                latest[key] = record
    # keep cell groups coherent: after dedupe a cell's group size is the number of its surviving lines
    by_cell: dict = {}
    for record in latest.values():
        by_cell.setdefault((record["cell"], record["write"]), []).append(record)
    lines = []
    for group in by_cell.values():
        for record in group:
            lines.append(json.dumps({**record, "group": len(group)}, sort_keys=True) + "\n")
    atomic_write_text(out_store.path, "".join(lines))
    return out_store
