//! What the browser tests need beside the cluster: the npm packages and
//! Debian's Chromium (installed by `.ci/run`, never at test time), the
//! OpenID provider process, people with passwords, and running one
//! browser script with its settings.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{self, Cluster};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/browser/` in the checkout.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Fails with the command that installs what is missing: these tests never
/// install anything themselves.
pub fn require_tools() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`; .ci/run does)"
    );
    for pkg in ["playwright-core", "oidc-provider"] {
        assert!(
            dir().join("node_modules").join(pkg).exists(),
            "tests/browser/node_modules/{pkg} is missing: run `npm ci` in tests/browser (.ci/run does)"
        );
    }
}

/// The OpenID provider (tests/browser/oidc/provider.mjs), killed on drop.
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl Provider {
    pub fn start(redirect: &str, log: &Path) -> Provider {
        let client_id = "cadang".to_string();
        let client_secret = format!("secret-{}", std::process::id());
        let mut child = Command::new("node")
            .arg("oidc/provider.mjs")
            .current_dir(dir())
            .env("OIDC_REDIRECT", redirect)
            .env("OIDC_CLIENT_ID", &client_id)
            .env("OIDC_CLIENT_SECRET", &client_secret)
            .env("OIDC_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("provider log"))
            .spawn()
            .expect("node runs the OpenID provider");
        let stdout = child.stdout.take().expect("provider stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(i) = line.strip_prefix("ISSUER ") {
                    let _ = tx.send(i.trim().to_string());
                }
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the OpenID provider did not start; see {}", log.display()));
        Provider {
            child,
            issuer,
            client_id,
            client_secret,
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `[sso]` to the controller's config and restarts it.
pub fn enable_sso(c: &mut Cluster, p: &Provider) {
    let mut text = std::fs::read_to_string(c.config_path()).expect("controller.toml");
    text.push_str(&format!(
        "\n[sso]\nissuer = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nnip_claim = \"nip\"\nredirect_url = \"{}/console/sso/callback\"\nscopes = [\"openid\", \"profile\", \"email\", \"nip\"]\nlabel = \"SSO Kabupaten Uji\"\n",
        p.issuer, p.client_id, p.client_secret, c.url
    ));
    std::fs::write(c.config_path(), text).expect("controller.toml");
    restart_controller(c);
}

pub fn restart_controller(c: &mut Cluster) {
    c.signal_controller(libc::SIGTERM);
    c.wait_controller_exit(Duration::from_secs(60))
        .expect("the controller stops on SIGTERM");
    c.start_controller();
}

/// A person of the test regency: a cadang user and, under `login`, their
/// account at the test provider (oidc/provider.mjs).
#[derive(Clone)]
pub struct Person {
    pub name: &'static str,
    pub nip: Option<&'static str>,
    /// `admin`, `operator`, `auditor`, `custodian:PD`.
    pub role: &'static str,
    pub login: &'static str,
}

impl Person {
    /// The body of `POST /api/v1/users` (proto `CreateUser`).
    fn create_body(&self) -> Value {
        let mut v = serde_json::json!({"name": self.name, "nip": self.nip});
        match self.role.split_once(':') {
            Some(("custodian", pd)) => {
                v["role"] = "custodian".into();
                v["pds"] = serde_json::json!([pd]);
            }
            _ => v["role"] = self.role.into(),
        }
        v
    }
}

/// Adds people through the API with the admin's token. Their roles are
/// granted here, in cadang; the provider only says who they are.
pub fn add_people(c: &Cluster, people: &[Person]) {
    for p in people {
        let (status, body) = curl_json(c, "/api/v1/users", &p.create_body());
        assert!(status, "adding {}: {body}", p.name);
    }
}

/// `POST path` with the admin's token: success and the answer.
pub fn curl_json(c: &Cluster, path: &str, body: &Value) -> (bool, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--cacert",
            &c.ca().display().to_string(),
            "-H",
            &format!("Authorization: Bearer {}", c.token),
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
            &format!("{}{path}", c.url),
        ])
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `tests/browser/<script>` with `settings` (a JSON file the script
/// reads); its `RESULT` line, or the test fails with the script's output.
pub fn run_script(c: &Cluster, script: &str, settings: &Value) -> Value {
    let file = c.dir().join(format!(
        "{script}.{}.json",
        settings["lang"].as_str().unwrap_or("x")
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(settings).unwrap()).unwrap();
    let start = Instant::now();
    let out = Command::new("node")
        .arg(script)
        .current_dir(dir())
        .env("CADANG_BROWSER_CONFIG", &file)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser script {script} failed after {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- cluster logs\n{}",
        start.elapsed(),
        c.logs()
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{script} printed no RESULT line:\n{stdout}"));
    serde_json::from_str(line).expect("RESULT is JSON")
}

/// Where screenshots go: `docs/img/` (for the user manual) when
/// `CADANG_SCREENSHOTS=docs` is set, else the test's own directory.
pub fn screenshot_dir(c: &Cluster) -> PathBuf {
    match std::env::var("CADANG_SCREENSHOTS").as_deref() {
        Ok("docs") => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img"),
        _ => c.dir().join("screenshots"),
    }
}

pub fn passphrase() -> &'static str {
    cluster::PASSPHRASE
}
