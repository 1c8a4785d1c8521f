#!/usr/bin/env python3
"""Checksum listing of a tree, to compare a restore with its source (stdlib only).

    python3 bench/treesum.py DIR [> listing]

One line per entry, sorted by path: type, permission bits, size, content
hash (files) or link target (symlinks), path relative to DIR. Sparse and
non-sparse copies of the same bytes hash the same: holes are skipped with
SEEK_DATA/SEEK_HOLE and hashed as zero runs, and all-zero blocks read from a
non-sparse file are hashed the same way. mtimes are not listed (the harness
reports them separately with --mtimes).
"""

import hashlib
import os
import stat
import sys

BLOCK = 1 << 20
ZERO = bytes(BLOCK)


def file_hash(path, size):
    """sha256 over the file's 1 MiB aligned blocks, an all-zero block (or a hole) hashed as a zero-run marker."""
    h = hashlib.sha256()
    zeros = 0  # pending run of zero bytes

    def flush_zeros():
        nonlocal zeros
        if zeros:
            h.update(b"\0Z%d\0" % zeros)
            zeros = 0

    with open(path, "rb") as f:
        fd = f.fileno()
        pos = 0
        while pos < size:
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                data_at = size  # only a hole remains
            if data_at >= pos + BLOCK:
                # Whole blocks of hole: skip them without reading.
                skip_to = min(size, data_at - data_at % BLOCK)
                zeros += skip_to - pos
                pos = skip_to
                continue
            b = os.pread(fd, min(BLOCK, size - pos), pos)
            if not b:
                break
            if b == ZERO[:len(b)]:
                zeros += len(b)
            else:
                flush_zeros()
                h.update(b)
            pos += len(b)
    flush_zeros()
    return h.hexdigest()


def listing(root, mtimes=False):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = "%04o" % stat.S_IMODE(st.st_mode)
            mt = " %d" % st.st_mtime if mtimes else ""
            if stat.S_ISDIR(st.st_mode):
                line = f"d {mode} - -{mt} {rel}"
            elif stat.S_ISLNK(st.st_mode):
                line = f"l - - {os.readlink(p)}{mt} {rel}"
            elif stat.S_ISREG(st.st_mode):
                line = f"f {mode} {st.st_size} {file_hash(p, st.st_size)}{mt} {rel}"
            else:
                line = f"o {mode} - -{mt} {rel}"
            out.append((rel, line))
    out.sort()
    return [line for _, line in out]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    for line in listing(args[0], mtimes="--mtimes" in sys.argv):
        sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
