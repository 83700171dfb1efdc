"""Git objects and tags in bulk: one ``git for-each-ref`` for every tag and one ``git cat-file --batch``
process for every blob, so history commands cost two subprocesses, not one per release."""
from __future__ import annotations

import subprocess
from pathlib import Path

from gitmodel import gitrepo

# One `git for-each-ref` for every tag and one `git cat-file --batch` process
# for every blob: history commands cost two subprocesses, not one per release.

TAG_FORMAT = ("%(refname:strip=2)%00%(objecttype)%00%(objectname)%00%(*objectname)%00%(*objecttype)%00"
              "%(creatordate:unix)%00%(taggername)%00%(taggeremail)%00%(contents)%01")


def list_tags(root: Path) -> list[dict]:
    """Every tag: name, commit it points to, unix time, tagger, full message (annotated tags).

    One ``for-each-ref``, not ``repo.tags``: GitPython reads each tag object
    on its own (a ``cat-file`` round trip per tag), which at a thousand
    releases costs more than the whole of ``log``."""
    out = gitrepo.run_git(root, "for-each-ref", "refs/tags", f"--format={TAG_FORMAT}")
    tags: list[dict] = []
    nested: list[int] = []
    for record in out.decode("utf-8", "surrogateescape").split("\x01"):
        record = record.lstrip("\n")
        if not record:
            continue
        name, kind, obj, peeled, peeled_kind, when, tagger, email, message = record.split("\0", 8)
        if peeled_kind == "tag":
            nested.append(len(tags))  # a tag of a tag: `*` peels one level only
        tags.append({
            "name": name,
            "annotated": kind == "tag",
            "commit": peeled if kind == "tag" else obj,
            "time": int(when) if when else 0,
            "tagger": f"{tagger} {email}".strip(),
            "message": message.rstrip("\n") if kind == "tag" else "",
        })
    for i in nested:  # rare: one rev-parse each is fine
        tags[i]["commit"] = gitrepo.resolve_commit(root, f"refs/tags/{tags[i]['name']}") or tags[i]["commit"]
    return tags


def object_ids(root: Path, specs: list[str]) -> list[str | None]:
    """The object id each ``<rev>:<path>`` names (None: no such object), through one ``git cat-file
    --batch-check``: a thousand revisions' copies of one file are usually one blob, read once."""
    if not specs:
        return []
    out = gitrepo.run_git(root, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                  input=("\n".join(specs) + "\n").encode("utf-8", "surrogateescape"))
    ids = []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        name, _, kind = line.rpartition(" ")
        ids.append(name if kind in ("blob", "tree", "commit", "tag") else None)
    return ids


def read_blobs(root: Path, specs: list[str], reader: "ObjectReader | None" = None) -> dict[str, bytes | None]:
    """``<rev>:<path>`` (or an object id) -> the blob's bytes, None where there is no blob; through
    ``reader`` when given, else through one ``git cat-file --batch`` of its own."""
    specs = list(dict.fromkeys(specs))
    if not specs:
        return {}
    own = reader is None
    reader = reader or ObjectReader(root)
    try:
        return {spec: item[1] if item and item[0] == "blob" else None
                for spec, item in zip(specs, reader.read_many(specs))}
    finally:
        if own:
            reader.close()


class ObjectReader:
    """Reads many git objects through one ``git cat-file --batch`` process.

    Not GitPython's ``repo.odb``: that keeps a ``cat-file --batch`` process too,
    but asks for one object at a time (a round trip each) and takes binary shas
    only, not ``<rev>:<path>``; this one writes requests in chunks and reads the
    answers as they come, and spares ``log`` and ``diff`` the GitPython import.
    Measured on 1,000 metrics blobs: 46 ms here, 79 ms through GitPython's
    batch process, plus ~0.1 s to import it."""

    def __init__(self, root: Path):
        self.proc = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def read_many(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        """(type, content) for each ``<rev>:<path>`` or sha; None where it does not exist."""
        results: list[tuple[str, bytes] | None] = []
        # In chunks: git answers while we write, and a whole batch written at
        # once would fill both pipes (ours to git, git's to us) and deadlock.
        chunk: list[str] = []
        size = 0
        for spec in specs:
            chunk.append(spec)
            size += len(spec) + 1
            if size >= self.CHUNK_BYTES:
                results += self._read_chunk(chunk)
                chunk, size = [], 0
        return results + self._read_chunk(chunk)

    CHUNK_BYTES = 16 * 1024   # well under a pipe's buffer (64 KiB on Linux)

    def _read_chunk(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        if not specs:
            return []
        self.proc.stdin.write("".join(f"{s}\n" for s in specs).encode("utf-8", "surrogateescape"))
        self.proc.stdin.flush()
        out = self.proc.stdout
        results = []
        for _ in specs:
            header = out.readline().rstrip(b"\n").split(b" ")
            if len(header) < 3 or header[1] == b"missing" or header[-1] == b"missing":
                results.append(None)
                continue
            size = int(header[2])
            data = out.read(size)
            out.read(1)  # the newline after every object
            results.append((header[1].decode(), data))
        return results

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()

    def __enter__(self) -> "ObjectReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tree_entries(data: bytes) -> list[tuple[str, str, str]]:
    """(mode, name, sha) of a raw git tree object."""
    entries = []
    i = 0
    while i < len(data):
        space = data.index(b" ", i)
        nul = data.index(b"\0", space)
        mode = data[i:space].decode()
        name = data[space + 1:nul].decode("utf-8", "surrogateescape")
        sha = data[nul + 1:nul + 21].hex()
        entries.append((mode, name, sha))
        i = nul + 21
    return entries


def files_at(root: Path, rev: str, folder: str, reader: ObjectReader | None = None) -> dict[str, bytes]:
    """Every file under ``folder`` at ``rev`` (a commit), recursively: path relative to root -> bytes.
    Read through one ``git cat-file --batch`` (``reader``, when given, is reused)."""
    own = reader is None
    reader = reader or ObjectReader(root)
    found: dict[str, bytes] = {}
    try:
        pending = [folder.rstrip("/")]
        while pending:
            subfolders, blobs = [], []
            for path, obj in zip(pending, reader.read_many([f"{rev}:{p}" for p in pending])):
                if obj is None or obj[0] != "tree":
                    continue
                for mode, name, sha in tree_entries(obj[1]):
                    if mode == "40000":
                        subfolders.append(f"{path}/{name}")
                    elif mode.startswith("100"):
                        blobs.append((f"{path}/{name}", sha))
            for (path, _), obj in zip(blobs, reader.read_many([sha for _, sha in blobs])):
                if obj is not None:
                    found[path] = obj[1]
            pending = subfolders
    finally:
        if own:
            reader.close()
    return found
