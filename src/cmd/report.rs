//! `cadang report verify` and `cadang report render`: an auditor checks a
//! drill report or compliance summary offline, JSON or PDF, and anyone
//! renders the signed JSON to HTML or PDF (the same bytes the controller
//! makes).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cadang_controller::api::reports::{ComplianceRequest, ReportMade};
use cadang_controller::report::{self, Lang, SignedDocument};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Check a signed report (JSON or PDF) offline: exit 0 valid, 1 invalid.
    Verify(VerifyArgs),
    /// Render a signed JSON report as HTML or PDF.
    Render(RenderArgs),
    /// Make a signed compliance summary from the controller's state (JSON, HTML, PDF), published to the stores.
    Compliance(ComplianceArgs),
}

#[derive(Args)]
pub struct ComplianceArgs {
    #[command(flatten)]
    conn: crate::cmd::fleet::ConnArgs,
    /// One PD (default: the whole regency).
    #[arg(long, value_name = "CODE")]
    pd: Option<String>,
    /// First day of the period (YYYY-MM-DD, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    from: String,
    /// Last day of the period (YYYY-MM-DD, or RFC 3339).
    #[arg(long, value_name = "DATE")]
    to: String,
    /// id (Bahasa Indonesia, the default) or en, for the HTML and PDF.
    #[arg(long, default_value = "id")]
    lang: String,
    /// The directory the JSON, HTML and PDF go to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The report: the signed .json, or the .pdf that carries it.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The controller's public report key (64 hex digits). Without it only
    /// self-consistency is checked.
    #[arg(long, value_name = "PUBKEY_HEX")]
    key: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Html,
    Pdf,
}

#[derive(Args)]
pub struct RenderArgs {
    /// The signed JSON report.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// id (Bahasa Indonesia, the default) or en.
    #[arg(long, default_value = "id")]
    lang: String,
    /// Where to write the rendering.
    #[arg(long, short, value_name = "OUT")]
    out: PathBuf,
}

pub async fn run(c: ReportCommand) -> Result<u8> {
    match c {
        ReportCommand::Verify(a) => verify(a),
        ReportCommand::Render(a) => render(a),
        ReportCommand::Compliance(a) => compliance(a).await,
    }
}

fn verify(a: VerifyArgs) -> Result<u8> {
    let key = match &a.key {
        Some(k) => Some(report::parse_public_key(k)?),
        None => None,
    };
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    match report::verify_file(&bytes, key.as_ref()) {
        Ok(v) => {
            let what = if v.pdf_lang.is_some() {
                "PDF is exactly the rendering of its signed report, and the signature is valid"
            } else {
                "signature is valid"
            };
            println!("valid: {} ({}): {what}", a.file.display(), v.document.kind);
            if v.trusted {
                println!("signed by the trusted key {}", v.key_id);
            } else {
                println!(
                    "NOTE: no --key given: only self-consistency was checked. It was signed by key {}; \
                     compare it with the controller's published report key, or pass --key.",
                    v.key_id
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("INVALID: {}: {e}", a.file.display());
            Ok(1)
        }
    }
}

fn render(a: RenderArgs) -> Result<u8> {
    let Some(lang) = Lang::parse(&a.lang) else {
        bail!("--lang {}: use id (Bahasa Indonesia) or en", a.lang);
    };
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let doc = SignedDocument::parse(&bytes)?;
    // Never render something that does not verify: a rendering looks official.
    doc.verify(None)?;
    let out = match a.format {
        Format::Html => report::render_html(&doc, lang)?.into_bytes(),
        Format::Pdf => report::render_pdf(&doc, lang)?,
    };
    std::fs::write(&a.out, out).with_context(|| format!("cannot write {}", a.out.display()))?;
    Ok(0)
}

/// Asks the controller for the summary, then fetches its renderings and
/// writes `<id>.json`, `<id>.html` and `<id>.pdf` into `--out`.
async fn compliance(a: ComplianceArgs) -> Result<u8> {
    let Some(lang) = Lang::parse(&a.lang) else {
        bail!("--lang {}: use id (Bahasa Indonesia) or en", a.lang);
    };
    let lang = if lang == Lang::En { "en" } else { "id" };
    let client = a.conn.client()?;
    let request = ComplianceRequest {
        pd: a.pd.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
    };
    let made: ReportMade = client.post("/api/v1/reports/compliance", &request).await?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let json_path = a.out.join(format!("{}.json", made.id));
    std::fs::write(&json_path, made.json.as_bytes())
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    for format in ["html", "pdf"] {
        let path = format!("/api/v1/reports/{}?format={format}&lang={lang}", made.id);
        let (status, body) = client.raw("GET", &path, None).await?;
        if status != 200 {
            bail!(
                "the controller answered {status} for the {format} rendering: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let file = a.out.join(format!("{}.{format}", made.id));
        std::fs::write(&file, body).with_context(|| format!("cannot write {}", file.display()))?;
    }
    println!("{} ({}) written to {}", made.id, made.kind, a.out.display());
    let mut all_ok = !made.published.is_empty();
    for p in &made.published {
        match &p.error {
            None => println!("published to store {}", p.store),
            Some(e) => {
                all_ok = false;
                eprintln!("NOT published to store {}: {e}", p.store);
            }
        }
    }
    if !all_ok {
        eprintln!("the summary is signed and kept by the controller; publish it again once the stores are reachable by making it again");
        return Ok(2);
    }
    Ok(0)
}
