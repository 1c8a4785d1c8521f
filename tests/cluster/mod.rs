//! A whole regency on one machine for end-to-end tests: a controller process,
//! agent processes with their own state directories, an on-site and a DR
//! store (directories), policies with every-minute schedules. Everything is
//! the real `cadang` binary; nothing is mocked.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod secrets;

pub const PASSPHRASE: &str = "kata sandi wali data uji";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cadang")
}

/// One agent host of the test regency.
pub struct HostSpec {
    pub pd: &'static str,
    pub host: &'static str,
    /// The `[[hosts.sources]]` body of the policy.
    pub sources: String,
}

pub struct Cluster {
    pub root: tempfile::TempDir,
    pub url: String,
    pub token: String,
    controller: Option<Child>,
    agents: Vec<(String, Option<Child>)>,
}

impl Cluster {
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
    pub fn onsite(&self, pd: &str) -> PathBuf {
        self.dir().join("onsite").join(pd)
    }
    pub fn dr(&self, pd: &str) -> PathBuf {
        self.dir().join("dr").join(pd)
    }
    fn config(&self) -> PathBuf {
        self.dir().join("ctl/controller.toml")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir().join("ctl/ca.pem")
    }

    /// Creates the stores, the controller, the PD repositories (as their
    /// custodians would), registers them, enrolls and starts one agent per
    /// host.
    pub fn start(hosts: &[HostSpec]) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let init = ok(cmd(&[
            "controller",
            "init",
            "--dir",
            &root.path().join("ctl").display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--name",
            "127.0.0.1",
            "--admin-nip",
            "198503122010011004",
        ]));
        // The admin token's own line (init prints more after it).
        let token = init
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("cadang-api-"))
            .expect("token line")
            .to_string();
        let mut cluster = Cluster {
            root,
            url,
            token,
            controller: None,
            agents: Vec::new(),
        };
        cluster.write_stores();
        cluster.write_policies(hosts);
        cluster.start_controller();
        let mut pds: Vec<&str> = hosts.iter().map(|h| h.pd).collect();
        pds.dedup();
        for pd in pds {
            cluster.create_and_register(pd);
        }
        for h in hosts {
            cluster.enroll(h.host, h.pd);
            cluster.start_agent(h.host);
        }
        cluster
    }

    fn write_stores(&self) {
        for site in ["onsite", "dr"] {
            std::fs::create_dir_all(self.dir().join(site)).unwrap();
        }
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        text.push_str(&format!(
            "\n[stores.pusat-data]\nurl = \"{}\"\n\n[stores.drc]\nurl = \"{}\"\n",
            self.dir().join("onsite").display(),
            self.dir().join("dr").display()
        ));
        std::fs::write(self.config(), text).unwrap();
    }

    fn write_policies(&self, hosts: &[HostSpec]) {
        let dir = self.dir().join("ctl/policies");
        std::fs::create_dir_all(dir.join("pd")).unwrap();
        std::fs::write(
            dir.join("regency.toml"),
            r#"name = "Kabupaten Uji"
zone = "Asia/Makassar"

[stores.pusat-data]
site = "onsite"

[stores.drc]
site = "dr"

[defaults.all]
schedule = "* * * * *"
onsite_store = "pusat-data"
dr_store = "drc"
rpo = "26h"
retention_schedule = "* * * * *"

[defaults.all.retention]
last = 100

[defaults.all.replication]
delay = "0s"

[defaults.all.verification]
schedule = "* * * * *"
read_share = "100%"
"#,
        )
        .unwrap();
        let mut pds: Vec<&str> = hosts.iter().map(|h| h.pd).collect();
        pds.dedup();
        for pd in pds {
            let mut text = format!(
                "code = \"{pd}\"\nname = \"Dinas {pd}\"\ngroup = \"lainnya\"\n\n[wali_data]\nname = \"Wali {pd}\"\nnip = \"198111072008042001\"\n"
            );
            for h in hosts.iter().filter(|h| h.pd == pd) {
                text.push_str(&format!(
                    "\n[[hosts]]\nname = \"{}\"\n{}\n",
                    h.host, h.sources
                ));
            }
            std::fs::write(dir.join(format!("pd/{}.toml", pd.to_lowercase())), text).unwrap();
        }
    }

    pub fn start_controller(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("controller.log"))
            .unwrap();
        let child = Command::new(bin())
            .args([
                "controller",
                "run",
                "--config",
                &self.config().display().to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("controller starts");
        self.controller = Some(child);
        self.wait(Duration::from_secs(30), "the controller to answer", |c| {
            c.api_ok(&["fleet", "status", "--json"]).map(|_| ())
        });
    }

    /// Sends `signal` to the controller process.
    pub fn signal_controller(&self, signal: i32) {
        let c = self.controller.as_ref().expect("controller running");
        // SAFETY: kill(2) on the child this cluster started.
        unsafe {
            libc::kill(c.id() as i32, signal);
        }
    }

    /// Waits for the controller to exit by itself; its status, or `None`
    /// if it is still running after `limit`.
    pub fn wait_controller_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let c = self.controller.as_mut().expect("controller running");
            if let Some(status) = c.try_wait().expect("wait") {
                self.controller = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The controller's process id, while it runs (for tests that read
    /// its memory through /proc).
    pub fn controller_pid(&self) -> Option<u32> {
        self.controller.as_ref().map(|c| c.id())
    }

    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("controller.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.config()
    }

    pub fn policy_file(&self, pd: &str) -> PathBuf {
        self.dir()
            .join(format!("ctl/policies/pd/{}.toml", pd.to_lowercase()))
    }

    /// `kill -9` of the controller's process group.
    pub fn kill_controller(&mut self) {
        if let Some(mut c) = self.controller.take() {
            kill_group(&mut c);
        }
    }

    fn create_and_register(&self, pd: &str) {
        let creds = self.dir().join(format!("{pd}.credentials"));
        ok(cadang(&[
            "repo",
            "init",
            "--repo",
            &self.onsite(pd).display().to_string(),
            "--pd",
            pd,
            "--agent-credentials",
            &creds.display().to_string(),
        ]));
        ok(self.api(&[
            "pd",
            "register",
            "--credentials",
            &creds.display().to_string(),
        ]));
    }

    fn enroll(&self, host: &str, pd: &str) {
        let out = ok(self.api(&[
            "controller",
            "enroll-token",
            "--config",
            &self.config().display().to_string(),
            "--host",
            host,
            "--pd",
            pd,
            "--ttl",
            "1h",
        ]));
        let token = out
            .split_whitespace()
            .find(|w| w.starts_with("cadang-enroll-1."))
            .unwrap_or_else(|| panic!("no token in {out}"))
            .to_string();
        let token_file = self.dir().join(format!("{host}.token"));
        std::fs::write(&token_file, token).unwrap();
        let state = self.agent_state(host);
        ok(cmd(&[
            "agent",
            "enroll",
            "--controller",
            &self.url,
            "--token-file",
            &token_file.display().to_string(),
            "--state-dir",
            &state.display().to_string(),
            "--host",
            host,
        ]));
        // Short timings so the test sees unattended runs and reconnects
        // within a minute or two instead of the production defaults.
        let config = state.join("agent.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        for (key, value) in [
            ("poll_wait_seconds", "5"),
            ("unattended_grace_seconds", "5"),
            ("backoff_max_millis", "3000"),
            ("stop_deadline_seconds", "10"),
        ] {
            text = replace_setting(&text, key, value);
        }
        std::fs::write(&config, text).unwrap();
    }

    pub fn agent_state(&self, host: &str) -> PathBuf {
        self.dir().join("agents").join(host)
    }

    pub fn start_agent(&mut self, host: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join(format!("agent-{host}.log")))
            .unwrap();
        let child = Command::new(bin())
            .args([
                "agent",
                "run",
                "--config",
                &self
                    .agent_state(host)
                    .join("agent.toml")
                    .display()
                    .to_string(),
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("agent starts");
        self.agents.retain(|(h, _)| h != host);
        self.agents.push((host.to_string(), Some(child)));
    }

    /// `kill -9` of an agent and whatever it was running (its dump command).
    pub fn kill_agent(&mut self, host: &str) {
        for (h, child) in &mut self.agents {
            if h == host {
                if let Some(mut c) = child.take() {
                    kill_group(&mut c);
                }
            }
        }
    }

    /// A `cadang` command with the controller's URL, CA and admin token.
    /// One HTTPS call to the controller's API as the bearer of `token`:
    /// the status and the JSON answer (`Null` if it is not JSON).
    pub fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "--cacert"])
            .arg(self.ca())
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-w", "\n%{http_code}"]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
        }
        let out = cmd
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    pub fn api(&self, args: &[&str]) -> Command {
        let mut c = cadang(args);
        c.env("CADANG_CONTROLLER", &self.url)
            .env("CADANG_CA", self.ca())
            .env("CADANG_TOKEN", &self.token);
        c
    }

    fn api_ok(&self, args: &[&str]) -> Option<Value> {
        let out = self.api(args).output().ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Every job the controller lists.
    pub fn jobs(&self) -> Vec<Value> {
        self.api_ok(&["jobs", "--json"])
            .and_then(|v| v["jobs"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Snapshots in a repository, read keylessly from the store.
    pub fn snapshots_in(&self, repo: &Path) -> Vec<Value> {
        let out = cadang(&["snapshots", "--repo", &repo.display().to_string(), "--json"])
            .output()
            .unwrap();
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                v.as_array()
                    .cloned()
                    .or_else(|| v["snapshots"].as_array().cloned())
            })
            .unwrap_or_default()
    }

    /// `GET /metrics` with the admin token.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--cacert",
                &self.ca().display().to_string(),
                "-H",
                &format!("Authorization: Bearer {}", self.token),
                &format!("{}/metrics", self.url),
            ])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "GET /metrics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`wait_for`], failing with the tail of every process's log.
    pub fn wait<T>(
        &self,
        limit: Duration,
        what: &str,
        mut probe: impl FnMut(&Cluster) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir()) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    all.push_str(&format!("== {} (last 40 lines)\n", p.display()));
                    for l in tail.into_iter().rev() {
                        all.push_str(l);
                        all.push('\n');
                    }
                }
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.agents {
            if let Some(mut c) = c.take() {
                kill_group(&mut c);
            }
        }
        self.kill_controller();
    }
}

fn kill_group(c: &mut Child) {
    // SAFETY: kill(2) on the process group the test created for the child.
    unsafe {
        libc::kill(-(c.id() as i32), libc::SIGKILL);
    }
    let _ = c.wait();
}

fn replace_setting(text: &str, key: &str, value: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key} =")) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "agent.toml has no {key}:\n{text}");
    out.push(String::new());
    out.join("\n")
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).stdin(Stdio::null());
    c
}

pub fn cadang(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env("CADANG_PASSPHRASE", PASSPHRASE)
        .env("CADANG_SCRYPT_LOG_N", "10")
        .stdin(Stdio::null());
    c
}

pub fn ok(mut c: Command) -> String {
    let out: Output = c.output().expect("cadang runs");
    assert!(
        out.status.success(),
        "{c:?} failed with {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `probe` every 500 ms until it yields, or fails the test naming
/// what it waited for.
pub fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
