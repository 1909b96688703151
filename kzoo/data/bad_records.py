"""Corrupt records in the user's data: stop with `file:line`, or skip and count them.

A large corpus often holds a few broken records: a line that is not UTF-8, a line of
megabytes (a binary file or a log line by mistake), a table row with the wrong number
of fields. The recipe key `data.on_bad_record` decides what happens: `stop` (the
default) raises `ValueError("{file}:{line}: {problem}")` at the first one; `skip`
drops it, counts it and keeps the first few locations for the run's log.

`scan_lines` streams a text file and says which lines are bad; `BadRecords` is the
policy every reader reports to (a line is too long when it has more than
`data.max_line_bytes` bytes, not counting its `"\\n"`). Readers of structured files
raise `BadRecord(problem)` from their row checks and report it with the row's line.
"""

import codecs
import itertools
import os

from kzoo.data.line_ends import normalize_line

POLICIES = ("stop", "skip")
MAX_LINE_BYTES = 1 << 20
_LOCATIONS_KEPT = 5
_CHUNK_BYTES = 1 << 20


class BadRecord(ValueError):
    """A record's problem, without its location.

    Row checks raise it; the loop that knows the file and line passes it on to
    `BadRecords.found`.
    """


class BadRecords:
    """What to do with bad records of one config key (`data.train`, ...).

    Args:
        policy: `"stop"` raises at the first bad record, `"skip"` counts it.
        max_line_bytes: Lines longer than this (without `"\\n"`) are bad.
        key: The config key the files came from, named in `summary()`.

    Attributes:
        count: Bad records skipped so far.
        locations: The first few `"{file}:{line}: {problem}"`, for the log.
        paths: Files that held a skipped record.

    Example:
    >>> records = BadRecords("skip", key="data.train")
    >>> records.found("train.tsv", 7, "expected 2 tab-separated fields, got 3")
    >>> records.count, records.summary()
    (1, 'data.train: skipped 1 bad record(s), first: train.tsv:7: expected 2 ...')
    >>> BadRecords("stop").found("train.tsv", 7, "empty text field")
    Traceback (most recent call last):
    ...
    ValueError: train.tsv:7: empty text field
    """

    def __init__(self, policy="stop", max_line_bytes=MAX_LINE_BYTES, key="data"):
        if policy not in POLICIES:
            raise ValueError(f"data.on_bad_record: expected one of {POLICIES}, got {policy!r}")
        if type(max_line_bytes) is not int or max_line_bytes < 1:
            raise ValueError(
                f"data.max_line_bytes: expected a positive int, got {max_line_bytes!r}"
            )
        self.policy = policy
        self.max_line_bytes = max_line_bytes
        self.key = key
        self.count = 0
        self.locations = []
        self.paths = set()

    @classmethod
    def from_config(cls, data_config, key):
        """The policy of a recipe's `data` section for the files of `key`."""
        return cls(
            data_config.get("on_bad_record", "stop"),
            data_config.get("max_line_bytes", MAX_LINE_BYTES),
            key,
        )

    @property
    def skipping(self):
        return self.policy == "skip"

    def found(self, path, line, problem):
        """Reports a bad record: raises (`stop`) or counts it (`skip`)."""
        location = f"{os.fspath(path)}:{line}: {problem}"
        if not self.skipping:
            raise ValueError(location)
        self.count += 1
        self.paths.add(os.fspath(path))
        if len(self.locations) < _LOCATIONS_KEPT:
            self.locations.append(location)

    def lines(self, path):
        """Yields `(line, text)` for every line of `path` (see `scan_lines`).

        A bad line is reported to `found` and yielded with `text=None`, so that
        readers can drop what it belongs to (a sentence, a pair).
        """
        for line, text, problem in scan_lines(path, self.max_line_bytes):
            if problem is not None:
                self.found(path, line, problem)
            yield line, text

    def check(self, path):
        """Streams `path` through `lines`: raises or counts its bad lines.

        A file without bad lines (most) is checked in large chunks, several times
        faster than line by line.
        """
        if _all_lines_good(path, self.max_line_bytes):
            return
        for _ in self.lines(path):
            pass

    def summary(self):
        """One line for the log."""
        if not self.count:
            return f"{self.key}: no bad records"
        return f"{self.key}: skipped {self.count} bad record(s), first: " + "; ".join(
            self.locations
        )

    def __repr__(self):
        return (
            f"BadRecords({self.policy!r}, {self.max_line_bytes}, {self.key!r}, count={self.count})"
        )


def scan_lines(path, max_line_bytes=MAX_LINE_BYTES):
    """Yields `(line, text, problem)` for every line of a file, streaming it.

    `"\\n"` and `"\\r\\n"` end a line (a lone `"\\r"` is text). A good line has its
    decoded `text` (with its line end as `"\\n"`, if any; a byte-order mark at the
    start of the file dropped: `kzoo.data.line_ends`) and `problem=None`; a bad line has
    `text=None` and says why: invalid UTF-8 (with the byte offset in the file) or
    more than `max_line_bytes` bytes. At most `max_line_bytes + 1` bytes of the file
    are in memory at once.

    Args:
        path: The file.
        max_line_bytes: The longest good line in bytes, `"\\n"` not counted.

    Yields:
        `(line, text, problem)`, `line` 1-based.

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write(b"ok\\n\\xff\\n" + b"x" * 9 + b"\\nend")
    >>> for line, text, problem in scan_lines(path, max_line_bytes=8):
    ...     print(line, repr(text), problem)
    1 'ok\\n' None
    2 None invalid UTF-8 at byte offset 3 (0xff): invalid start byte; ...
    3 None line of 9 bytes is longer than data.max_line_bytes=8
    4 'end' None
    """
    offset = 0  # Of the line's first byte in the file.
    with open(path, "rb") as file:
        for line in itertools.count(1):
            raw = file.readline(max_line_bytes + 1)
            if not raw:
                return
            size = len(raw)
            if size - raw.endswith(b"\n") > max_line_bytes:
                while not raw.endswith(b"\n"):  # Read the rest of it in chunks.
                    raw = file.readline(_CHUNK_BYTES)
                    if not raw:
                        break
                    size += len(raw)
                length = size - raw.endswith(b"\n")
                yield (
                    line,
                    None,
                    (f"line of {length} bytes is longer than data.max_line_bytes={max_line_bytes}"),
                )
            else:
                try:
                    text, problem = normalize_line(raw.decode("utf-8"), line == 1), None
                except UnicodeDecodeError as error:
                    text, problem = None, invalid_utf8(error, offset + error.start)
                yield line, text, problem
            offset += size


def invalid_utf8(error, offset):
    """The problem phrase of a `UnicodeDecodeError` at file offset `offset`.

    Example:
    >>> try:
    ...     b"caf\\xe9".decode("utf-8")
    ... except UnicodeDecodeError as error:
    ...     print(invalid_utf8(error, 3))
    invalid UTF-8 at byte offset 3 (0xe9): unexpected end of data; the corpus ...
    """
    bad = error.object[error.start : error.end].hex()
    return (
        f"invalid UTF-8 at byte offset {offset} (0x{bad}): {error.reason}; "
        "the corpus must be UTF-8 text"
    )


def _all_lines_good(path, max_line_bytes):
    """Whether every line of `path` is UTF-8 and short enough, in 1 MiB chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line_bytes = 0  # Of the line that runs on past the chunk read so far.
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
            first, last = chunk.find(b"\n"), chunk.rfind(b"\n")
            if first < 0:
                line_bytes += len(chunk)
            else:
                inner = chunk[first + 1 : last].split(b"\n") if last > first else [b""]
                if max(line_bytes + first, max(map(len, inner))) > max_line_bytes:
                    return False
                line_bytes = len(chunk) - last - 1
            if line_bytes > max_line_bytes:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
