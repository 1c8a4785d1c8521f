#!/usr/bin/env python3
"""Deterministic "next day" changes to a dataset made by gen_dataset.py (stdlib only).

    python3 bench/mutate_dataset.py DIR

Applied to the same day-1 dataset it gives the same day-2 bytes everywhere:
  - edits ~2 % of the small files (a span in the middle replaced, size changes a little)
  - appends to ~1 % of them (new log lines / CSV rows)
  - adds ~50 new files and deletes ~50
  - inserts ~4 MiB of new rows in the *middle* of the SQL dump (the end of
    the penduduk table, before riwayat_layanan) and rewrites the file
  - rewrites a few MiB inside the VM image in place (holes stay holes)
Counts and sizes follow the dataset's own scale (small-file count / 6000,
dump size / 700 MiB). Run it once per copy: it changes DIR in place.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_dataset as g  # noqa: E402

DAY2_MTIME = g.BASE_MTIME + 301 * 86400


def small_files(root):
    out = []
    for top in ("dokumen", "arsip"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                if os.path.isfile(p) and not os.path.islink(p):
                    out.append(os.path.relpath(p, root))
    return sorted(out)


def touch(path, rel):
    t = DAY2_MTIME + g.rng_for("mtime2", rel).randrange(0, 86400)
    os.utime(path, (t, t))


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    root = sys.argv[1]
    g.init_globals()
    people = g.People()
    rng = g.rng_for("day2")
    files = small_files(root)
    if not files:
        sys.exit(f"mutate_dataset: no dataset in {root}")
    scale = len(files) / g.SMALL_FILES

    n_edit = max(2, round(len(files) * 0.02))
    n_append = max(1, round(len(files) * 0.01))
    n_delete = max(2, round(50 * scale))
    n_new = max(2, round(50 * scale))
    picked = rng.sample(files, n_edit + n_append + n_delete)
    edits = sorted(picked[:n_edit])
    appends = sorted(picked[n_edit:n_edit + n_append])
    deletes = sorted(picked[n_edit + n_append:])

    # Edits: a span in the middle replaced by new text of a slightly different length.
    for rel in edits:
        p = os.path.join(root, rel)
        r = g.rng_for("edit", rel)
        with open(p, "rb") as f:
            data = f.read()
        n = len(data)
        at = r.randrange(0, max(1, n // 2)) + n // 4
        cut = min(n - at, r.randrange(64, 2048))
        new = g.corpus.paragraphs(r, cut + r.randrange(0, 400)).encode("utf-8")[:max(1, cut + r.randrange(-200, 400))]
        with open(p, "wb") as f:  # same inode, like an editor saving in place
            f.write(data[:at] + new + data[at + cut:])
        touch(p, rel)

    # Appends: log lines / rows at the end.
    for rel in appends:
        p = os.path.join(root, rel)
        r = g.rng_for("append", rel)
        size = r.randrange(1024, 20 * 1024)
        if rel.endswith(".csv"):
            rows = people.rows(r, max(1, size // 120))
            text = "".join(f'{x[0]},"{x[2]}",{x[3]},{x[5]},"{x[9]} RT {x[10]} RW {x[11]}",{x[12]},{x[13]}\n' for x in rows)
        else:
            text = g.corpus.paragraphs(r, size)
        with open(p, "ab") as f:
            f.write(text.encode("utf-8"))
        touch(p, rel)

    for rel in deletes:
        os.remove(os.path.join(root, rel))

    # New files beside existing ones.
    dirs = sorted({os.path.dirname(f) for f in files if f.startswith("dokumen/")})
    for i in range(n_new):
        d = dirs[rng.randrange(len(dirs))]
        kind, ext = rng.choice([("txt", ".txt"), ("txt", ".txt"), ("csv", ".csv"), ("json", ".json")])
        rel = f"{d}/baru_{i:04d}{ext}"
        p = os.path.join(root, rel)
        with open(p, "wb") as f:
            f.write(g.small_file_content(rel, kind, people))
        touch(p, rel)

    # SQL dump: new penduduk rows where that table's data ends (the middle of the file).
    sql_rel = "db/dump_siak_kependudukan.sql"
    sql = os.path.join(root, sql_rel)
    if os.path.exists(sql):
        with open(sql, "rb") as f:
            data = f.read()
        mark = data.find(b"\n--\n" + g.SQL_MIDDLE_MARK.encode())
        if mark < 0:
            sys.exit("mutate_dataset: the SQL dump has no riwayat_layanan section")
        at = mark + 1  # after the newline ending the last penduduk row
        last = data.rfind(b"INSERT INTO penduduk VALUES (", 0, at)
        last_id = int(data[last:at].split(b"(", 1)[1].split(b",", 1)[0])
        want = max(64 * 1024, round(4 * g.MiB * len(data) / g.SQL_BYTES))
        r = g.rng_for("sql-day2")
        parts = []
        size = 0
        next_id = last_id + 1
        while size < want:
            s = g.penduduk_sql(people.rows(r, 500), next_id)
            next_id += 500
            parts.append(s)
            size += len(s)
        tmp = sql + ".tmp"
        with open(tmp, "wb") as f:  # a fresh dump replaces yesterday's
            f.write(data[:at])
            f.write("".join(parts).encode())
            f.write(data[at:])
        os.replace(tmp, sql)
        touch(sql, sql_rel)
        del data

    # VM image: a few MiB rewritten inside existing extents.
    vm_rel = "vm/srv-aplikasi-01.img"
    vm = os.path.join(root, vm_rel)
    if os.path.exists(vm):
        apparent = os.path.getsize(vm)
        scale_vm = apparent / g.VM_APPARENT
        extents = [e for e in g.vm_extents(apparent, max(4 * g.MiB, int(g.VM_DATA * scale_vm))) if e[1] >= 8192]
        want = max(g.MiB, round(6 * g.MiB * scale_vm))
        r = g.rng_for("vm-day2")
        done = 0
        with open(vm, "r+b") as f:
            while done < want:
                off, ln = extents[r.randrange(len(extents))]
                n = min(ln, r.randrange(16, 65) * 4096, want - done + 4096)
                pos = off + r.randrange(0, (ln - n) // 4096 + 1) * 4096
                f.seek(pos)
                f.write(r.randbytes(n))
                done += n
        touch(vm, vm_rel)

    # Directories whose entries changed get a day-2 mtime too, so the whole tree is deterministic.
    for rel in sorted({os.path.dirname(x) for x in deletes} | {os.path.dirname(sql_rel)} |
                      {f"{d}" for d in dirs if any(os.path.basename(p).startswith("baru_") for p in os.listdir(os.path.join(root, d)))}):
        p = os.path.join(root, rel)
        if os.path.isdir(p):
            touch(p, rel + "/")

    print(f"day 2: {len(edits)} edited, {len(appends)} appended, {len(deletes)} deleted, {n_new} new small files; "
          f"SQL +rows in the middle; VM image rewritten in place", file=sys.stderr)


if __name__ == "__main__":
    main()
