#!/usr/bin/env python3
"""Writes a mixed dataset of about MIB mebibytes into DIR, like a PD server's:
incompressible images, a compressible database dump, a duplicate of one image
(deduplication), a couple of thousand small documents, a sparse file, a
symlink, an empty directory and a non-ASCII name. Deterministic (seeded), so
two runs back up the same bytes.

usage: make_dataset.py DIR MIB
"""

import os
import random
import sys

MIB = 1 << 20


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def images(root, rng, total):
    """Random bytes in files of at most 48 MiB: nothing to compress or dedup."""
    left, n = total, 0
    while left > 0:
        size = min(left, 48 * MIB)
        write(os.path.join(root, "arsip", f"scan-{n:02}.img"), rng.randbytes(size))
        left -= size
        n += 1
    return os.path.join(root, "arsip", "scan-00.img")


def dump(root, total):
    """A SQL dump: compresses several times over."""
    path = os.path.join(root, "db", "simpeg.sql")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        written, i = 0, 0
        while written < total:
            line = f"INSERT INTO pegawai VALUES ({i}, 'NIP{i:018}', 'nama pegawai {i}', 'Bengkulu');\n"
            f.write(line)
            written += len(line)
            i += 1


def documents(root, rng, total):
    """Small files of 1-64 KiB, half text-like, half random."""
    written, n = 0, 0
    while written < total:
        size = rng.randint(1024, 64 * 1024)
        if n % 2:
            data = rng.randbytes(size)
        else:
            data = (f"Surat nomor {n}. " * (size // 16 + 1)).encode()[:size]
        write(os.path.join(root, "dokumen", f"{n // 100:03}", f"surat-{n:05}.txt"), data)
        written += size
        n += 1


def oddities(root, rng, first_image):
    """What a restore gets wrong first: holes, links, empty dirs, names."""
    sparse = os.path.join(root, "vm", "sparse.raw")
    os.makedirs(os.path.dirname(sparse), exist_ok=True)
    with open(sparse, "wb") as f:
        f.truncate(16 * MIB)
        f.seek(5 * MIB)
        f.write(rng.randbytes(MIB))
    with open(first_image, "rb") as src:
        write(os.path.join(root, "salinan", "scan-00-copy.img"), src.read())
    os.symlink("../db/simpeg.sql", os.path.join(root, "salinan", "dump-terbaru.sql"))
    os.makedirs(os.path.join(root, "kosong"), exist_ok=True)
    write(os.path.join(root, "dokumen", "laporan tahunan – Kabupaten.txt"), "ringkasan\n".encode())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, mib = sys.argv[1], int(sys.argv[2])
    rng = random.Random(20261203)
    total = max(mib, 64) * MIB
    first = images(root, rng, total * 45 // 100)
    dump(root, total * 25 // 100)
    documents(root, rng, total * 15 // 100)
    # The duplicate image is the remaining ~15% (up to 48 MiB).
    oddities(root, rng, first)


if __name__ == "__main__":
    main()
