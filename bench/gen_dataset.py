#!/usr/bin/env python3
"""Deterministic benchmark dataset for cadang (stdlib only).

    python3 bench/gen_dataset.py DIR [--scale S]

Writes about 2 GiB (at scale 1) that looks like a regional government
agency's server:

  dokumen/   ~6000 small files (1 KiB - 200 KiB) in a nested tree: letters and
             reports whose words come from the real regulation texts in
             /work/shared/seeds/*.txt, CSV tables, JSON exports, and ~4 %
             byte-identical duplicates (arsip/ copies, the same attachment
             filed twice); a few symlinks
  db/        one SQL dump (~700 MiB) of INSERT rows: NIK numbers, names,
             addresses, dates (compressible text)
  pindaian/  ~400 MiB of incompressible "scans" (1-8 MiB, random bytes behind
             a JPEG header)
  vm/        a sparse VM disk image: 2 GiB apparent size, ~300 MiB of data
             in scattered extents, the rest holes

The dense variant (--variant dense or BENCH_VARIANT=dense) is the same
agency without the sparse image, whose holes flatter a tool that restores
them: four times the small files (~26,000 files, like the 26,278-file
restore the issue measured) and, in place of the sparse image, a dense one
of 512 MiB (the same three kinds of content, back to back, no holes).

The same seed gives the same bytes (and the same mtimes) on every machine:
all randomness comes from random.Random instances seeded with strings, every
listing is sorted, nothing depends on hash order or the clock. The scale
(--scale or BENCH_SCALE, default 1) multiplies every size and count.
"""

import argparse
import datetime
import glob
import json
import os
import random
import re
import sys

SEED = "cadang-bench-2024-v1"
SEEDS_DIR = os.environ.get("BENCH_SEEDS_DIR", "/work/shared/seeds")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# Sizes at scale 1.
SMALL_FILES = 6000
SQL_BYTES = 700 * MiB
SCAN_BYTES = 400 * MiB
VM_APPARENT = 2 * GiB
VM_DATA = 300 * MiB
# The dense variant: no holes anywhere; per-file costs count.
DENSE_SMALL_FACTOR = 4
DENSE_VM_BYTES = 512 * MiB
VARIANTS = ("sparse", "dense")

BASE_MTIME = 1704067200  # 2024-01-01T00:00:00Z: every file's mtime is base + a seeded offset

UNITS = [
    "DISKOMINFO", "BAPPEDA", "DINKES", "DISDUKCAPIL", "DPMPTSP", "BKPSDM",
    "DINSOS", "DISDIK", "DPUPR", "BPKAD", "SETDA", "INSPEKTORAT",
]
YEARS = ["2019", "2020", "2021", "2022", "2023", "2024"]
CATEGORIES = [
    "surat_masuk", "surat_keluar", "laporan", "anggaran", "kepegawaian",
    "notulen", "sk", "data", "pengadaan", "arsip_layanan",
]
FIRST_NAMES = [
    "Agus", "Budi", "Siti", "Dewi", "Ahmad", "Muhammad", "Nur", "Sri", "Rina",
    "Andi", "Yusuf", "Fitri", "Hendra", "Indah", "Joko", "Kartika", "Lestari",
    "Made", "Nyoman", "Putu", "Ketut", "Wayan", "Rahmat", "Ratna", "Sugeng",
    "Teguh", "Wahyu", "Yanti", "Zainal", "Bambang", "Cahya", "Dian", "Eko",
    "Fajar", "Gita", "Hadi", "Irawan", "Junaidi", "Kurniawan", "Lina", "Maya",
    "Nanda", "Oki", "Puspita", "Rizky", "Slamet", "Taufik", "Umar", "Vina",
    "Wulan", "Yoga", "Arif", "Bayu", "Dimas", "Erna", "Farida", "Gunawan",
    "Hasanah", "Ismail", "Jamilah", "Lukman", "Mulyadi", "Novi", "Rudi",
    "Samsul", "Tri", "Usman", "Wati", "Yudi", "Abdul", "Aisyah", "Fatimah",
    "Hamzah", "Iwan", "Kiki", "Lia", "Mega", "Nina", "Reza", "Sari", "Tono",
]
LAST_NAMES = [
    "Saputra", "Wijaya", "Santoso", "Hidayat", "Pratama", "Kusuma", "Siregar",
    "Nasution", "Harahap", "Lubis", "Simanjuntak", "Sitompul", "Gultom",
    "Setiawan", "Susanto", "Nugroho", "Rahman", "Hakim", "Syahputra", "Ramadhan",
    "Purnama", "Wibowo", "Hartono", "Gunawan", "Suryadi", "Firmansyah",
    "Maulana", "Anggraini", "Permata", "Utami", "Puspitasari", "Handayani",
    "Sari", "Wahyuni", "Rahayu", "Lestari", "Fauzi", "Hasibuan", "Daulay",
    "Tanjung", "Batubara", "Pane", "Manurung", "Sinaga", "Pardede", "Panjaitan",
    "Tampubolon", "Marpaung", "Situmorang", "Effendi", "Irawan", "Sembiring",
    "Ginting", "Tarigan", "Karo", "Bangun", "Hutapea", "Latuconsina", "Pattimura",
    "Mamonto", "Lasut", "Wenas", "Rumengan", "Sondakh", "",
]
PLACES = [
    "Sangatta", "Samarinda", "Balikpapan", "Bontang", "Tenggarong", "Batulicin",
    "Kotabaru", "Banjarmasin", "Martapura", "Tanjung", "Barabai", "Kandangan",
    "Rantau", "Amuntai", "Paringin", "Pelaihari", "Tanah Grogot", "Penajam",
    "Tanjung Redeb", "Malinau", "Nunukan", "Tarakan", "Tanjung Selor", "Sendawar",
    "Makassar", "Surabaya", "Jakarta", "Bandung", "Yogyakarta", "Medan",
    "Palembang", "Pontianak", "Manado", "Kupang", "Mataram", "Denpasar",
]
STREETS = [
    "Jl. Jenderal Sudirman", "Jl. Ahmad Yani", "Jl. Diponegoro", "Jl. Gatot Subroto",
    "Jl. Pattimura", "Jl. Pangeran Antasari", "Jl. Mulawarman", "Jl. Imam Bonjol",
    "Jl. Kartini", "Jl. Hasanuddin", "Jl. Cut Nyak Dien", "Jl. Teuku Umar",
    "Jl. Veteran", "Jl. Merdeka", "Jl. Pendidikan", "Jl. Poros Kabupaten",
    "Jl. Soekarno Hatta", "Jl. Yos Sudarso", "Jl. RE Martadinata", "Jl. Pemuda",
    "Gg. Mawar", "Gg. Melati", "Gg. Kenanga", "Gg. Anggrek", "Perum Bumi Indah Blok",
    "Jl. Poros Sangatta-Bengalon", "Jl. Transmigrasi", "Jl. Sungai Kunjang",
]
KELURAHAN = [
    "Sangatta Utara", "Sangatta Selatan", "Teluk Lingga", "Swarga Bara", "Singa Gembara",
    "Kampung Baru", "Tanjung Laut", "Api-Api", "Gunung Elai", "Loktuan", "Batu Ampar",
    "Sepinggan", "Gunung Bahagia", "Damai", "Klandasan Ilir", "Prapatan", "Karang Rejo",
    "Simpang Empat", "Sungai Danau", "Gunung Tinggi", "Serongga", "Kampung Baru Hulu",
]
KECAMATAN = [
    "Sangatta Utara", "Sangatta Selatan", "Bengalon", "Muara Wahau", "Kongbeng",
    "Kaliorang", "Sandaran", "Rantau Pulung", "Simpang Empat", "Batulicin",
    "Kusan Hilir", "Satui", "Angsana", "Mantewe", "Kuranji", "Karang Bintang",
]
AGAMA = ["ISLAM"] * 8 + ["KRISTEN", "KATOLIK", "HINDU", "BUDDHA", "KHONGHUCU"]
KAWIN = ["BELUM KAWIN", "KAWIN", "KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI"]
PEKERJAAN = [
    "PELAJAR/MAHASISWA", "MENGURUS RUMAH TANGGA", "WIRASWASTA", "KARYAWAN SWASTA",
    "PEGAWAI NEGERI SIPIL", "PETANI/PEKEBUN", "NELAYAN/PERIKANAN", "BURUH HARIAN LEPAS",
    "GURU", "PEDAGANG", "TNI", "POLRI", "PERAWAT", "BIDAN", "SOPIR", "BELUM/TIDAK BEKERJA",
    "KARYAWAN BUMN", "TUKANG KAYU", "MEKANIK", "PENSIUNAN",
]
LAYANAN = [
    "PENERBITAN KTP-EL", "PERUBAHAN KK", "AKTA KELAHIRAN", "AKTA KEMATIAN",
    "SURAT PINDAH", "KIA", "LEGALISIR", "PERBAIKAN DATA", "IZIN USAHA", "IMB/PBG",
]
STATUS = ["SELESAI", "SELESAI", "SELESAI", "PROSES", "DITOLAK", "MENUNGGU VERIFIKASI"]
JABATAN = [
    "Kepala Dinas", "Sekretaris", "Kepala Bidang", "Kepala Seksi", "Kepala Sub Bagian",
    "Analis Kebijakan", "Pranata Komputer", "Arsiparis", "Bendahara", "Staf Pelaksana",
    "Pengelola Data", "Perencana", "Auditor", "Analis Keuangan",
]
GOLONGAN = ["II/a", "II/b", "II/c", "II/d", "III/a", "III/b", "III/c", "III/d", "IV/a", "IV/b", "IV/c"]


def rng_for(*parts):
    """A Random seeded by a string: the same stream everywhere (seed version 2 hashes with SHA-512)."""
    return random.Random(":".join([SEED] + [str(p) for p in parts]))


# ---------------------------------------------------------------- vocabulary

class Corpus:
    """Words of the real regulation texts: the token stream (for phrases) and the vocabulary."""

    def __init__(self, seeds_dir=SEEDS_DIR):
        files = sorted(glob.glob(os.path.join(seeds_dir, "*.txt")))
        if not files:
            sys.exit(f"gen_dataset: no seed texts in {seeds_dir}/*.txt")
        tokens = []
        for f in files:
            with open(f, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            # Markdown/OCR noise out, words and punctuation-attached words in.
            text = text.replace("*", "").replace("#", "")
            tokens.extend(t for t in text.split() if t not in ("-", "|"))
        self.tokens = tokens
        self.vocab = sorted(set(tokens))
        self.words = [w for w in self.vocab if re.fullmatch(r"[A-Za-z][a-z]{2,}", w)] or self.vocab
        self.titles = [w for w in self.vocab if re.fullmatch(r"[A-Z][a-z]{3,}", w)] or self.vocab
        # Precompute the phrase boundary so phrases never run past the end.
        self.n = len(tokens) - 16

    def words_n(self, rng, nwords):
        """About nwords words: mostly phrases (2-9 consecutive seed tokens), a third single random words."""
        toks, vocab, n = self.tokens, self.vocab, self.n
        out = []
        rb = rng.getrandbits
        while len(out) < nwords:
            r = rb(16)
            if r & 3:
                s = rb(20) % n
                out.extend(toks[s:s + 2 + (r >> 2) % 8])
            else:
                out.extend(rng.choices(vocab, k=1 + (r >> 2) % 3))
        return out

    def paragraphs(self, rng, nbytes, width=80):
        """Wrapped paragraphs of about nbytes (UTF-8 text, ends with a newline)."""
        lines = []
        size = 0
        pasal = 1 + rng.getrandbits(5)
        while size < nbytes:
            r = rng.getrandbits(8)
            if r < 20:
                head = f"Pasal {pasal}"
                pasal += 1
                lines.append("")
                lines.append(head)
                size += len(head) + 2
            elif r < 24:
                head = "BAB " + ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"][r % 10]
                lines.append("")
                lines.append(head)
                lines.append(" ".join(rng.choices(self.titles, k=2 + r % 3)).upper())
                size += 40
            words = self.words_n(rng, 30 + rng.getrandbits(6))
            if r & 1:
                words.insert(0, f"({1 + r % 9})")
            line = []
            ll = 0
            for w in words:
                if ll + len(w) > width and line:
                    s = " ".join(line)
                    lines.append(s)
                    size += len(s) + 1
                    line = []
                    ll = 0
                line.append(w)
                ll += len(w) + 1
            if line:
                s = " ".join(line)
                lines.append(s)
                size += len(s) + 1
            lines.append("")
            size += 1
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- records

def fmt_date(rng, y0, y1):
    y = y0 + rng.randrange(y1 - y0 + 1)
    return y, 1 + rng.randrange(12), 1 + rng.randrange(28)


class People:
    """Batches of Indonesian civil registry records (NIK, KK, names, addresses)."""

    def __init__(self):
        self.region = [f"64{k:02d}{c:02d}" for k in range(1, 12) for c in range(1, 19)]
        self.dates = []  # (iso, ddmmyy male, ddmmyy female)
        d = datetime.date(1940, 1, 1)
        end = datetime.date(2023, 12, 31)
        one = datetime.timedelta(days=1)
        while d <= end:
            yy = d.year % 100
            self.dates.append((d.isoformat(), f"{d.day:02d}{d.month:02d}{yy:02d}", f"{d.day + 40:02d}{d.month:02d}{yy:02d}"))
            d += one
        self.seq = [f"{i:04d}" for i in range(1, 10000)]
        self.rtrw = [f"{i:03d}" for i in range(1, 40)]
        self.house = [str(i) for i in range(1, 250)]
        self.postal = [str(75300 + i) for i in range(0, 90, 3)]
        self.stamps = [f"2024-{m:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"
                       for m in range(1, 13) for d in (1, 5, 9, 13, 17, 21, 25)
                       for h in (7, 8, 9, 10, 11, 13, 14, 15) for mi in (3, 17, 29, 41, 52) for s in (7, 33)]

    def rows(self, rng, k):
        """k tuples of record fields (strings), drawn in column batches for speed."""
        ch = rng.choices
        reg = ch(self.region, k=k)
        reg2 = ch(self.region, k=k)
        dates = ch(self.dates, k=k)
        kkd = ch(self.dates, k=k)
        sq = ch(self.seq, k=k)
        sq2 = ch(self.seq, k=k)
        sex = ch((0, 1), k=k)
        fn = ch(FIRST_NAMES, k=k)
        mn = ch(FIRST_NAMES + [""] * 40, k=k)
        ln = ch(LAST_NAMES, k=k)
        pl = ch(PLACES, k=k)
        ag = ch(AGAMA, k=k)
        kw = ch(KAWIN, k=k)
        pk = ch(PEKERJAAN, k=k)
        st = ch(STREETS, k=k)
        hs = ch(self.house, k=k)
        rt = ch(self.rtrw, k=k)
        rw = ch(self.rtrw, k=k)
        kl = ch(KELURAHAN, k=k)
        kc = ch(KECAMATAN, k=k)
        po = ch(self.postal, k=k)
        ts = ch(self.stamps, k=k)
        ts2 = ch(self.stamps, k=k)
        out = []
        for i in range(k):
            d = dates[i]
            s = sex[i]
            name = " ".join(x for x in (fn[i], mn[i], ln[i]) if x).upper()
            out.append((
                reg[i] + d[1 + s] + sq[i],                 # NIK
                reg2[i] + kkd[i][1] + sq2[i],              # no. KK
                name, "LAKI-LAKI" if s == 0 else "PEREMPUAN", pl[i].upper(), d[0], ag[i], kw[i], pk[i],
                f"{st[i]} No. {hs[i]}", rt[i], rw[i], kl[i].upper(), kc[i].upper(), po[i], ts[i], ts2[i],
            ))
        return out


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def penduduk_sql(rows, first_id):
    return "".join(
        f"INSERT INTO penduduk VALUES ({first_id + i},'{r[0]}','{r[1]}',{sql_quote(r[2])},'{r[3]}','{r[4]}',"
        f"'{r[5]}','{r[6]}','{r[7]}','{r[8]}',{sql_quote(r[9])},'{r[10]}','{r[11]}','{r[12]}','{r[13]}',"
        f"'{r[14]}','{r[15]}','{r[16]}');\n"
        for i, r in enumerate(rows))


def layanan_sql(rng, rows, first_id):
    lay = rng.choices(LAYANAN, k=len(rows))
    st = rng.choices(STATUS, k=len(rows))
    return "".join(
        f"INSERT INTO riwayat_layanan VALUES ({first_id + i},'{r[0]}','{lay[i]}','{st[i]}','{r[15]}',"
        f"'{r[16]}','LOKET-{(first_id + i) % 7 + 1}',{sql_quote('Petugas ' + r[2].title())});\n"
        for i, r in enumerate(rows))


SQL_HEADER = """--
-- PostgreSQL database dump
--
-- Dumped from database version 15.6 (Debian 15.6-0+deb12u1)
-- Dumped by pg_dump version 15.6 (Debian 15.6-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET check_function_bodies = false;
SET client_min_messages = warning;

CREATE TABLE public.penduduk (
    id bigint NOT NULL,
    nik character(16) NOT NULL,
    no_kk character(16) NOT NULL,
    nama_lengkap character varying(120) NOT NULL,
    jenis_kelamin character varying(12) NOT NULL,
    tempat_lahir character varying(60),
    tanggal_lahir date,
    agama character varying(12),
    status_kawin character varying(16),
    pekerjaan character varying(40),
    alamat character varying(200),
    rt character(3),
    rw character(3),
    kelurahan character varying(60),
    kecamatan character varying(60),
    kode_pos character(5),
    created_at timestamp without time zone,
    updated_at timestamp without time zone
);

CREATE TABLE public.riwayat_layanan (
    id bigint NOT NULL,
    nik character(16) NOT NULL,
    layanan character varying(40) NOT NULL,
    status character varying(24) NOT NULL,
    diajukan timestamp without time zone,
    diperbarui timestamp without time zone,
    loket character varying(12),
    petugas character varying(120)
);

--
-- Data for Name: penduduk; Type: TABLE DATA; Schema: public
--

"""

SQL_MIDDLE = """
--
-- Data for Name: riwayat_layanan; Type: TABLE DATA; Schema: public
--

"""

SQL_FOOTER = """
ALTER TABLE ONLY public.penduduk ADD CONSTRAINT penduduk_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.riwayat_layanan ADD CONSTRAINT riwayat_layanan_pkey PRIMARY KEY (id);
CREATE UNIQUE INDEX penduduk_nik_idx ON public.penduduk USING btree (nik);

--
-- PostgreSQL database dump complete
--
"""

SQL_MIDDLE_MARK = "-- Data for Name: riwayat_layanan;"


def write_sql(path, total, people):
    """The dump: penduduk rows (~60 %), then riwayat_layanan rows, then the footer."""
    rng = rng_for("sql")
    batch = 4000
    written = 0
    next_id = 1
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(SQL_HEADER)
        written += len(SQL_HEADER)
        target = total * 0.6
        while written < target:
            s = penduduk_sql(people.rows(rng, batch), next_id)
            next_id += batch
            f.write(s)
            written += len(s)
        f.write(SQL_MIDDLE)
        lid = 1
        while written < total - len(SQL_FOOTER):
            s = layanan_sql(rng, people.rows(rng, batch), lid)
            lid += batch
            f.write(s)
            written += len(s)
        f.write(SQL_FOOTER)
    return next_id


# ---------------------------------------------------------------- small files

def csv_text(rng, people, nbytes, kind):
    if kind == 0:
        head = "no,nip,nama,jabatan,golongan,unit_kerja,tmt,gaji_pokok\n"
        parts = [head]
        size = len(head)
        i = 1
        while size < nbytes:
            rows = people.rows(rng, 50)
            for r in rows:
                nip = r[5].replace("-", "") + r[15][:7].replace("-", "") + ("1" if r[3] == "LAKI-LAKI" else "2") + r[0][-3:]
                line = (f"{i},{nip},{r[2].title()},{rng.choice(JABATAN)},{rng.choice(GOLONGAN)},"
                        f"{rng.choice(UNITS)},{r[15][:10]},{2000000 + rng.randrange(4000) * 1000}\n")
                parts.append(line)
                size += len(line)
                i += 1
        return "".join(parts)
    if kind == 1:
        head = "kode_rekening;uraian;pagu;realisasi;persen;tanggal\n"
        parts = [head]
        size = len(head)
        words = corpus.words
        while size < nbytes:
            pagu = rng.randrange(5, 5000) * 1_000_000
            real = pagu * rng.randrange(0, 101) // 100
            uraian = " ".join(rng.choices(words, k=3 + rng.randrange(6))).capitalize()
            y, m, d = fmt_date(rng, 2019, 2024)
            line = (f"5.{rng.randrange(1, 4)}.{rng.randrange(1, 30):02d}.{rng.randrange(1, 99):02d}."
                    f"{rng.randrange(1, 999):03d};{uraian};{pagu};{real};{100 * real / pagu:.2f};{y}-{m:02d}-{d:02d}\n")
            parts.append(line)
            size += len(line)
        return "".join(parts)
    head = "nik,nama,jenis_kelamin,tanggal_lahir,alamat,kelurahan,kecamatan\n"
    parts = [head]
    size = len(head)
    while size < nbytes:
        for r in people.rows(rng, 50):
            line = f'{r[0]},"{r[2]}",{r[3]},{r[5]},"{r[9]} RT {r[10]} RW {r[11]}",{r[12]},{r[13]}\n'
            parts.append(line)
            size += len(line)
    return "".join(parts)


def json_text(rng, people, nbytes):
    recs = []
    size = 0
    i = rng.randrange(1, 100000)
    while size < nbytes:
        for r in people.rows(rng, 20):
            rec = {
                "id": i, "nik": r[0], "nama": r[2], "layanan": rng.choice(LAYANAN),
                "status": rng.choice(STATUS), "diajukan": r[15], "diperbarui": r[16],
                "alamat": {"jalan": r[9], "rt": r[10], "rw": r[11], "kelurahan": r[12], "kecamatan": r[13]},
                "catatan": " ".join(corpus.words_n(rng, 6 + rng.randrange(12))),
            }
            recs.append(rec)
            size += 420
            i += 1
    return json.dumps({"sumber": "SIAK", "versi": 3, "data": recs}, indent=2, ensure_ascii=False) + "\n"


def letter_text(rng, nbytes, unit, year):
    y, m, d = int(year), 1 + rng.randrange(12), 1 + rng.randrange(28)
    head = (f"PEMERINTAH KABUPATEN KUTAI TIMUR\n{unit}\n\nNomor   : {rng.randrange(1, 999):03d}/{unit}/"
            f"{['I', 'II', 'III', 'IV', 'V', 'VI', 'VII', 'VIII', 'IX', 'X', 'XI', 'XII'][m - 1]}/{year}\n"
            f"Tanggal : {d:02d}-{m:02d}-{y}\nPerihal : {' '.join(rng.choices(corpus.titles, k=4))}\n\n")
    return head + corpus.paragraphs(rng, max(0, nbytes - len(head)))


def small_size(rng):
    """1 KiB - 200 KiB: half log-uniform (many small), half uniform."""
    if rng.getrandbits(1):
        return int(KiB * 200 ** rng.random())
    return rng.randrange(KiB, 200 * KiB)


def small_file_plan(count):
    """The list of (relative path, kind) for the small files, and duplicates as (path, source path)."""
    rng = rng_for("tree")
    dirs = []
    for u in UNITS:
        for y in YEARS:
            for c in rng.sample(CATEGORIES, 3 + rng.randrange(4)):
                dirs.append(f"dokumen/{u}/{y}/{c}")
                if rng.random() < 0.25:
                    dirs.append(f"dokumen/{u}/{y}/{c}/{rng.choice(['lampiran', 'draft', 'final', 'scan_ocr'])}")
    files = []
    dups = []
    n_dup = count * 4 // 100
    names = {}
    for i in range(count - n_dup):
        d = dirs[rng.randrange(len(dirs))]
        r = rng.random()
        if r < 0.55:
            kind, ext = "txt", rng.choice([".txt", ".txt", ".md", ".log"])
        elif r < 0.78:
            kind, ext = "csv", ".csv"
        else:
            kind, ext = "json", ".json"
        stem = rng.choice(["surat", "laporan", "nota_dinas", "rekap", "data", "notulen", "sk", "export", "daftar"])
        p = f"{d}/{stem}_{i:05d}{ext}"
        files.append((p, kind))
        names[p] = True
    for j in range(n_dup):
        src = files[rng.randrange(len(files))][0]
        if rng.random() < 0.5:
            p = "arsip/salinan/" + src[len("dokumen/"):]
        else:
            d = dirs[rng.randrange(len(dirs))]
            p = f"{d}/{os.path.basename(src)}"
        if p in names:
            p = p.rsplit(".", 1)[0] + f"_salinan{j}." + p.rsplit(".", 1)[1]
        names[p] = True
        dups.append((p, src))
    return files, dups


def small_file_content(path, kind, people):
    rng = rng_for("small", path)
    size = small_size(rng)
    parts = path.split("/")
    unit = parts[1] if len(parts) > 2 else "DISKOMINFO"
    year = parts[2] if len(parts) > 3 and parts[2].isdigit() else "2024"
    if kind == "txt":
        text = letter_text(rng, size, unit, year)
    elif kind == "csv":
        text = csv_text(rng, people, size, rng.randrange(3))
    else:
        text = json_text(rng, people, size)
    data = text.encode("utf-8")
    return data[:size] if kind != "json" else data


def mtime_for(path):
    return BASE_MTIME + rng_for("mtime", path).randrange(0, 300 * 86400)


def write_file(root, rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    t = mtime_for(rel)
    os.utime(p, (t, t))


# ---------------------------------------------------------------- scans and VM image

JPEG_HEAD = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x01\x2c\x01\x2c\x00\x00"
             b"\xff\xe1\x00\x40Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + b"CANON DR-C225 SCAN".ljust(52, b"\x00"))


def scan_plan(total):
    rng = rng_for("scans")
    out = []
    size = 0
    i = 0
    while size < total:
        n = min(rng.randrange(1 * MiB, 8 * MiB), max(total - size, 64 * KiB))
        out.append((f"pindaian/{rng.choice(UNITS)}/{rng.choice(YEARS)}/scan_{i:05d}.jpg", n))
        size += n
        i += 1
    return out


def write_scan(root, rel, n):
    rng = rng_for("scan", rel)
    data = JPEG_HEAD + rng.randbytes(max(0, n - len(JPEG_HEAD) - 2)) + b"\xff\xd9"
    write_file(root, rel, data)


def vm_extents(apparent, data):
    """Non-overlapping (offset, length) extents, 4 KiB aligned, about `data` bytes in total."""
    rng = rng_for("vm-layout")
    slot = 16 * MiB if apparent >= 512 * MiB else MiB
    nslots = apparent // slot
    want = data
    out = []
    # The first extent is the "boot sector + partition table" region.
    slots = sorted(rng.sample(range(1, nslots), min(nslots - 1, max(1, int(nslots * 0.7)))))
    per = want / max(1, len(slots))
    out.append((0, 1 * MiB if slot >= 16 * MiB else 64 * KiB))
    used = out[0][1]
    for s in slots:
        if used >= want:
            break
        ln = int(per * (0.2 + 1.6 * rng.random())) // 4096 * 4096
        ln = max(4096, min(ln, slot - 4096, want - used + 4096))
        off = s * slot + (rng.randrange(0, max(1, (slot - ln) // 4096)) * 4096)
        out.append((off, ln))
        used += ln
    return out


def write_dense_vm(root, rel, total):
    """A disk image with no holes: extents of 1-8 MiB of the sparse image's content kinds, back to back."""
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    layout = rng_for("vm-dense-layout")
    off = 0
    with open(p, "wb") as f:
        while off < total:
            ln = min(total - off, layout.randrange(1, 9) * MiB)
            rng = rng_for("vm-dense", off)
            kind = rng.choices((0, 1, 2), weights=(5, 3, 2))[0]
            f.write(vm_extent_data(rng, ln, kind))
            off += ln
    t = mtime_for(rel)
    os.utime(p, (t, t))


def vm_extent_data(rng, n, kind):
    if kind == 0:
        return rng.randbytes(n)  # compressed files, binaries
    if kind == 1:
        return corpus.paragraphs(rng, n).encode("utf-8")[:n].ljust(n, b" ")
    # filesystem-metadata-like: inode tables, counters (compressible, not zero)
    rows = []
    size = 0
    base = rng.randrange(1 << 30)
    while size < n:
        rec = (base + size // 64).to_bytes(8, "little") + b"\xed\x41\x00\x00" + rng.randbytes(4) + b"EXT4INOD" + bytes(range(40))
        rows.append(rec)
        size += len(rec)
    return b"".join(rows)[:n]


def write_vm(root, rel, apparent, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        for off, ln in vm_extents(apparent, data):
            rng = rng_for("vm", off)
            kind = rng.choices((0, 1, 2), weights=(5, 3, 2))[0]
            f.seek(off)
            f.write(vm_extent_data(rng, ln, kind))
        f.truncate(apparent)
    t = mtime_for(rel)
    os.utime(p, (t, t))


# ---------------------------------------------------------------- main

corpus = None


def scale_from(args_scale):
    s = args_scale if args_scale is not None else float(os.environ.get("BENCH_SCALE", "1") or "1")
    if not (0 < s <= 4):
        sys.exit("gen_dataset: scale must be in (0, 4]")
    return s


def variant_from(args_variant):
    v = args_variant or os.environ.get("BENCH_VARIANT", "") or "sparse"
    if v not in VARIANTS:
        sys.exit(f"gen_dataset: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    return v


def init_globals():
    global corpus
    if corpus is None:
        corpus = Corpus()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--scale", type=float, default=None, help="multiply sizes and counts (default BENCH_SCALE or 1)")
    ap.add_argument("--variant", choices=VARIANTS, default=None,
                    help="sparse (default, or BENCH_VARIANT): with the sparse VM image; dense: no holes, 4x the small files")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    scale = scale_from(a.scale)
    dense = variant_from(a.variant) == "dense"
    root = a.dir
    if os.path.exists(root) and os.listdir(root):
        sys.exit(f"gen_dataset: {root} exists and is not empty")
    os.makedirs(root, exist_ok=True)
    init_globals()
    people = People()

    def say(msg):
        if not a.quiet:
            print(msg, file=sys.stderr, flush=True)

    count = max(60, round(SMALL_FILES * scale * (DENSE_SMALL_FACTOR if dense else 1)))
    files, dups = small_file_plan(count)
    say(f"small files: {len(files)} + {len(dups)} duplicates")
    contents = {}
    total_small = 0
    for rel, kind in files:
        data = small_file_content(rel, kind, people)
        write_file(root, rel, data)
        total_small += len(data)
        contents[rel] = None
    for rel, src in dups:
        with open(os.path.join(root, src), "rb") as f:
            data = f.read()
        write_file(root, rel, data)
        total_small += len(data)
    # A few symlinks, as on any real server.
    for i, u in enumerate(UNITS[:4]):
        link = os.path.join(root, "dokumen", u, "terbaru")
        os.symlink("2024", link)
        t = mtime_for(os.path.relpath(link, root))
        os.utime(link, (t, t), follow_symlinks=False)
    say(f"small files: {total_small / MiB:.1f} MiB")

    sql_total = max(4 * MiB, int(SQL_BYTES * scale))
    say(f"sql dump: {sql_total / MiB:.0f} MiB")
    os.makedirs(os.path.join(root, "db"), exist_ok=True)
    sql_rel = "db/dump_siak_kependudukan.sql"
    write_sql(os.path.join(root, sql_rel), sql_total, people)
    t = mtime_for(sql_rel)
    os.utime(os.path.join(root, sql_rel), (t, t))

    scans = scan_plan(max(2 * MiB, int(SCAN_BYTES * scale)))
    say(f"scans: {len(scans)} files, {sum(n for _, n in scans) / MiB:.0f} MiB")
    for rel, n in scans:
        write_scan(root, rel, n)

    if dense:
        total = max(16 * MiB, int(DENSE_VM_BYTES * scale) // MiB * MiB)
        say(f"vm image: {total / MiB:.0f} MiB, dense (no holes)")
        write_dense_vm(root, "vm/srv-aplikasi-01.img", total)
    else:
        apparent = max(64 * MiB, int(VM_APPARENT * scale) // MiB * MiB)
        vdata = max(4 * MiB, int(VM_DATA * scale))
        say(f"vm image: {apparent / MiB:.0f} MiB apparent, ~{vdata / MiB:.0f} MiB data")
        write_vm(root, "vm/srv-aplikasi-01.img", apparent, vdata)

    # Directory mtimes last (writing files changed them).
    for dirpath, dirnames, _ in sorted(os.walk(root), reverse=True):
        rel = os.path.relpath(dirpath, root)
        t = mtime_for(rel + "/")
        os.utime(dirpath, (t, t))
    say("done")


if __name__ == "__main__":
    main()
