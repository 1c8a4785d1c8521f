//! The words of the renderings, in Bahasa Indonesia (the default) and
//! English, with the terms of the project glossary.

use super::drill::FailReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    /// `id` or `en` (as `--lang` takes it).
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "id" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    pub fn messages(self) -> &'static Messages {
        match self {
            Lang::Id => &ID,
            Lang::En => &EN,
        }
    }
}

/// One catalogue: every label a rendering shows.
pub struct Messages {
    pub drill_title: &'static str,
    pub summary_title: &'static str,
    pub passed: &'static str,
    pub failed: &'static str,
    pub result: &'static str,
    pub reasons: &'static str,
    pub regency: &'static str,
    pub pd: &'static str,
    pub data_group: &'static str,
    pub custodian: &'static str,
    pub nip: &'static str,
    pub snapshot: &'static str,
    pub snapshot_time: &'static str,
    pub source_host: &'static str,
    pub site: &'static str,
    pub files: &'static str,
    pub bytes: &'static str,
    pub verification: &'static str,
    pub files_checked: &'static str,
    pub mismatches: &'static str,
    pub mismatch_more: &'static str,
    pub check: &'static str,
    pub check_run: &'static str,
    pub expected: &'static str,
    pub got: &'static str,
    pub output: &'static str,
    pub no_check: &'static str,
    pub restore_time: &'static str,
    pub rto: &'static str,
    pub rp_age: &'static str,
    pub rpo: &'static str,
    pub runner: &'static str,
    pub approvals: &'static str,
    pub seq: &'static str,
    pub action: &'static str,
    pub started: &'static str,
    pub finished: &'static str,
    pub generated: &'static str,
    pub signed: &'static str,
    pub key: &'static str,
    pub period: &'static str,
    pub backups: &'static str,
    pub rpo_met: &'static str,
    pub drills_passed: &'static str,
    pub restores: &'static str,
    pub requested_approved_rejected: &'static str,
    pub total: &'static str,
    pub verify_hint: &'static str,
    pub report_id: &'static str,
}

pub static ID: Messages = Messages {
    drill_title: "Laporan uji pemulihan",
    summary_title: "Ringkasan kepatuhan",
    passed: "LULUS",
    failed: "GAGAL",
    result: "Hasil",
    reasons: "Alasan",
    regency: "Pemerintah daerah",
    pd: "Perangkat Daerah (PD)",
    data_group: "Kelompok data",
    custodian: "Wali Data",
    nip: "NIP",
    snapshot: "Snapshot",
    snapshot_time: "Waktu snapshot",
    source_host: "Server sumber",
    site: "Dipulihkan dari",
    files: "Berkas",
    bytes: "Byte",
    verification: "Verifikasi",
    files_checked: "Berkas diperiksa",
    mismatches: "Tidak cocok",
    mismatch_more: "berkas lain yang tidak cocok tercantum dalam JSON bertanda tangan",
    check: "Pemeriksaan",
    check_run: "Perintah / kueri",
    expected: "Diharapkan",
    got: "Didapat",
    output: "Cuplikan keluaran",
    no_check: "Tidak ada pemeriksaan dalam kebijakan",
    restore_time: "Waktu pemulihan",
    rto: "Target waktu pemulihan (RTO)",
    rp_age: "Umur titik pemulihan",
    rpo: "Target titik pemulihan (RPO)",
    runner: "Pelaksana uji",
    approvals: "Persetujuan (log audit)",
    seq: "No. urut",
    action: "Tindakan",
    started: "Mulai",
    finished: "Selesai",
    generated: "Dibuat",
    signed: "Ditandatangani secara digital oleh kontroler",
    key: "Kunci publik",
    period: "Periode",
    backups: "Pencadangan (selesai / terjadwal)",
    rpo_met: "RPO terpenuhi",
    drills_passed: "Uji pemulihan lulus",
    restores: "Permintaan pemulihan",
    requested_approved_rejected: "diajukan / disetujui / ditolak",
    total: "Jumlah kabupaten",
    verify_hint: "Periksa keaslian: cadang report verify BERKAS --key KUNCI",
    report_id: "Nomor laporan",
};

pub static EN: Messages = Messages {
    drill_title: "Restore drill report",
    summary_title: "Compliance summary",
    passed: "PASSED",
    failed: "FAILED",
    result: "Result",
    reasons: "Reasons",
    regency: "Regency",
    pd: "Agency (PD)",
    data_group: "Data group",
    custodian: "Wali Data (data custodian)",
    nip: "NIP",
    snapshot: "Snapshot",
    snapshot_time: "Snapshot time",
    source_host: "Source host",
    site: "Restored from",
    files: "Files",
    bytes: "Bytes",
    verification: "Verification",
    files_checked: "Files checked",
    mismatches: "Mismatches",
    mismatch_more: "more mismatched files are listed in the signed JSON",
    check: "Check",
    check_run: "Command / query",
    expected: "Expected",
    got: "Got",
    output: "Output excerpt",
    no_check: "The policy has no check",
    restore_time: "Restore time",
    rto: "Recovery-time objective (RTO)",
    rp_age: "Recovery-point age",
    rpo: "Recovery-point objective (RPO)",
    runner: "Drill runner",
    approvals: "Approvals (audit log)",
    seq: "Seq",
    action: "Action",
    started: "Started",
    finished: "Finished",
    generated: "Generated",
    signed: "Digitally signed by the controller",
    key: "Public key",
    period: "Period",
    backups: "Backups (done / scheduled)",
    rpo_met: "RPO met",
    drills_passed: "Drills passed",
    restores: "Restore requests",
    requested_approved_rejected: "requested / approved / rejected",
    total: "Regency total",
    verify_hint: "Verify: cadang report verify FILE --key KEY",
    report_id: "Report id",
};

/// A failure reason as a sentence in `lang`.
pub fn reason(lang: Lang, r: &FailReason) -> String {
    let d = |s: u64| duration(lang, s);
    match (lang, r) {
        (Lang::Id, FailReason::Verification { mismatches }) => {
            format!("{mismatches} berkas tidak cocok dengan snapshot")
        }
        (Lang::En, FailReason::Verification { mismatches }) => {
            format!("{mismatches} files do not match the snapshot")
        }
        (Lang::Id, FailReason::CheckFailed) => "pemeriksaan gagal".into(),
        (Lang::En, FailReason::CheckFailed) => "the check failed".into(),
        (
            Lang::Id,
            FailReason::OverRto {
                seconds,
                rto_seconds,
            },
        ) => format!(
            "waktu pemulihan {} melebihi target waktu pemulihan (RTO) {}",
            d(*seconds),
            d(*rto_seconds)
        ),
        (
            Lang::En,
            FailReason::OverRto {
                seconds,
                rto_seconds,
            },
        ) => format!(
            "restore took {}, over the recovery-time objective (RTO) of {}",
            d(*seconds),
            d(*rto_seconds)
        ),
        (
            Lang::Id,
            FailReason::OverRpo {
                age_seconds,
                rpo_seconds,
            },
        ) => format!(
            "umur snapshot {} melebihi target titik pemulihan (RPO) {}",
            d(*age_seconds),
            d(*rpo_seconds)
        ),
        (
            Lang::En,
            FailReason::OverRpo {
                age_seconds,
                rpo_seconds,
            },
        ) => format!(
            "the snapshot was {} old, over the recovery-point objective (RPO) of {}",
            d(*age_seconds),
            d(*rpo_seconds)
        ),
        (Lang::Id, FailReason::NoSnapshot) => {
            "tidak ada snapshot dalam target titik pemulihan (RPO)".into()
        }
        (Lang::En, FailReason::NoSnapshot) => {
            "no snapshot within the recovery-point objective (RPO)".into()
        }
        (Lang::Id, FailReason::DrDamaged { detail }) => {
            format!("salinan di pusat pemulihan data (DRC) rusak: {detail}")
        }
        (Lang::En, FailReason::DrDamaged { detail }) => {
            format!("the copy at the disaster-recovery site is damaged: {detail}")
        }
        (Lang::Id, FailReason::RestoreFailed { detail }) => {
            format!("pemulihan tidak selesai: {detail}")
        }
        (Lang::En, FailReason::RestoreFailed { detail }) => {
            format!("the restore did not complete: {detail}")
        }
    }
}

/// Seconds for people: "1 jam 5 menit 3 detik" / "1 h 5 min 3 s".
pub fn duration(lang: Lang, seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let units = match lang {
        Lang::Id => [" jam", " menit", " detik"],
        Lang::En => [" h", " min", " s"],
    };
    let parts: Vec<String> = [(h, units[0]), (m, units[1]), (s, units[2])]
        .into_iter()
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        format!("0{}", units[2])
    } else {
        parts.join(" ")
    }
}
