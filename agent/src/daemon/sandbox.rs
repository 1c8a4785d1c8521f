//! The drill sandbox: a fresh directory per drill, removed afterwards, and
//! a throwaway PostgreSQL cluster inside it for database checks.
//!
//! The cluster listens on a Unix socket in the sandbox only (no TCP), trusts
//! local connections (nothing else can reach it), and is stopped and removed
//! with the sandbox. PostgreSQL refuses to run as root, so when the runner
//! is root the server runs as the `postgres` system user (Debian's package
//! creates it), or `nobody`.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where Debian puts PostgreSQL's programs (`/usr/lib/postgresql/15/bin`).
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// Overrides the search (a directory with `initdb`, `pg_ctl`, `psql`).
pub const PG_BIN_ENV: &str = "CADANG_PG_BIN";
/// The database the dump is restored into.
const DB: &str = "drill";
/// The cluster's superuser.
const DB_USER: &str = "cadang";

/// What went wrong in the sandbox, for the drill report's check output.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("PostgreSQL's programs were not found (looked in {PG_BIN_ENV} and {DEBIAN_PG_LIB}/*/bin); install Debian's `postgresql` package on the drill runner")]
    NoPostgres,
    #[error("{program} failed ({status}): {output}")]
    Program {
        program: String,
        status: String,
        output: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Io {
        action,
        path,
        source,
    }
}

/// A fresh directory for one drill; removed on [`Sandbox::remove`] or drop.
pub struct Sandbox {
    root: PathBuf,
    removed: bool,
}

impl Sandbox {
    /// Creates `BASE/cadang-drill-<id>-<random>`. Mode 0711: other users
    /// may pass through (the database server's user reaches its own
    /// directory) but not list or read the restored data.
    pub fn create(base: &Path, drill_id: &str) -> Result<Sandbox, SandboxError> {
        let mut r = [0u8; 6];
        cadang_core::keys::fill_random(&mut r);
        let safe: String = drill_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(24)
            .collect();
        let root = base.join(format!("cadang-drill-{safe}-{}", hex::encode(r)));
        std::fs::create_dir_all(base).map_err(io("create", base))?;
        std::fs::create_dir(&root).map_err(io("create", &root))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
            .map_err(io("set the mode of", &root))?;
        let restore = root.join("restore");
        std::fs::create_dir(&restore).map_err(io("create", &restore))?;
        std::fs::set_permissions(&restore, std::fs::Permissions::from_mode(0o700))
            .map_err(io("set the mode of", &restore))?;
        Ok(Sandbox {
            root,
            removed: false,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the snapshot is restored.
    pub fn restore_dir(&self) -> PathBuf {
        self.root.join("restore")
    }

    /// Removes the sandbox and everything in it.
    pub fn remove(mut self) -> Result<(), SandboxError> {
        self.removed = true;
        std::fs::remove_dir_all(&self.root).map_err(io("remove", &self.root))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The directory with PostgreSQL's server programs: `$CADANG_PG_BIN`, or
/// the newest `/usr/lib/postgresql/<version>/bin`.
pub fn pg_bin() -> Result<PathBuf, SandboxError> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).map(PathBuf::from) {
        return dir
            .join("initdb")
            .is_file()
            .then_some(dir)
            .ok_or(SandboxError::NoPostgres);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_PG_LIB)
        .map_err(|_| SandboxError::NoPostgres)?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or(SandboxError::NoPostgres)
}

/// A running throwaway cluster; stopped on [`PgCluster::stop`] or drop.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    server_user: Option<(u32, u32)>,
    running: bool,
}

impl PgCluster {
    /// `initdb` in `SANDBOX/pg`, then start it on a socket in `SANDBOX/pg/run`.
    pub fn start(sandbox_root: &Path) -> Result<PgCluster, SandboxError> {
        let bin = pg_bin()?;
        let base = sandbox_root.join("pg");
        let (data, socket) = (base.join("data"), base.join("run"));
        for d in [&base, &socket] {
            std::fs::create_dir(d).map_err(io("create", d))?;
        }
        let server_user = unprivileged_user();
        if let Some((uid, gid)) = server_user {
            for d in [&base, &socket] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).map_err(io("hand over", d))?;
            }
        }
        let mut cluster = PgCluster {
            bin,
            data,
            socket,
            server_user,
            running: false,
        };
        cluster.server(&["initdb"], |c| {
            c.arg("-D").arg(&cluster.data).args([
                "-U",
                DB_USER,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ])
        })?;
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off",
            cluster.socket.display()
        );
        let log = base.join("server.log");
        cluster.server(&["pg_ctl"], |c| {
            c.arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"])
        })?;
        cluster.running = true;
        cluster.client("createdb", |c| c.arg(DB))?;
        Ok(cluster)
    }

    /// Restores `dump` into the drill database: `pg_restore` for the
    /// custom and tar formats (`PGDMP` magic or a tar header), `psql -f`
    /// for a plain SQL dump.
    pub fn restore(&self, dump: &Path) -> Result<String, SandboxError> {
        let out = if is_archive(dump)? {
            self.client("pg_restore", |c| {
                c.args(["--no-owner", "--no-privileges", "--exit-on-error", "-d", DB])
                    .arg(dump)
            })?
        } else {
            self.client("psql", |c| {
                c.args(["-v", "ON_ERROR_STOP=1", "-q", "-d", DB, "-f"])
                    .arg(dump)
            })?
        };
        Ok(text(&out))
    }

    /// Runs `query` and returns its output (`psql -At`: values only).
    pub fn query(&self, query: &str) -> Result<String, SandboxError> {
        let out = self.client("psql", |c| {
            c.args(["-v", "ON_ERROR_STOP=1", "-At", "-d", DB, "-c", query])
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops the server at once (the data is thrown away anyway).
    pub fn stop(mut self) -> Result<(), SandboxError> {
        self.stop_now()
    }

    fn stop_now(&mut self) -> Result<(), SandboxError> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let data = self.data.clone();
        self.server(&["pg_ctl"], |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
        })
        .map(|_| ())
    }

    /// A server program, as the unprivileged user when we are root.
    fn server(
        &self,
        program: &[&str],
        args: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Result<Output, SandboxError> {
        let mut c = Command::new(self.bin.join(program[0]));
        if let Some((uid, gid)) = self.server_user {
            c.uid(uid).gid(gid);
        }
        // pg_ctl's children must not hold our stdout: the caller waits
        // for it to close.
        c.stdin(Stdio::null()).env("LC_ALL", "C").current_dir("/");
        args(&mut c);
        run(program[0], &mut c)
    }

    /// A client program over the sandbox's socket.
    fn client(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Result<Output, SandboxError> {
        let mut c = Command::new(self.bin.join(program));
        c.stdin(Stdio::null())
            .env("PGHOST", &self.socket)
            .env("PGUSER", DB_USER)
            .env("LC_ALL", "C");
        args(&mut c);
        run(program, &mut c)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop_now();
    }
}

fn run(program: &str, c: &mut Command) -> Result<Output, SandboxError> {
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SandboxError::Program {
            program: program.into(),
            status: "did not start".into(),
            output: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(SandboxError::Program {
            program: program.into(),
            status: out.status.to_string(),
            output: excerpt(&text(&out), 20),
        });
    }
    Ok(out)
}

fn text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// The first `lines` lines of `s`, at most 2,000 characters.
pub fn excerpt(s: &str, lines: usize) -> String {
    let cut: Vec<&str> = s.lines().take(lines).collect();
    cut.join("\n").chars().take(2000).collect()
}

/// Whether `dump` is a `pg_dump` archive (custom `-Fc` or tar `-Ft`)
/// rather than plain SQL.
fn is_archive(dump: &Path) -> Result<bool, SandboxError> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(dump).map_err(io("open", dump))?;
    let n = f.read(&mut head).map_err(io("read", dump))?;
    let custom = head[..n].starts_with(b"PGDMP");
    let tar = n >= 262 && &head[257..262] == b"ustar";
    Ok(custom || tar)
}

/// The user the database server runs as: `None` (ourselves) unless we are
/// root, then `postgres` or `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| lookup_user(name))
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam with a valid C string; the returned record is read
    // at once, before any other call could reuse its static buffer.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_is_fresh_private_and_removed() {
        let base = tempfile::tempdir().unwrap();
        let a = Sandbox::create(base.path(), "d-1").unwrap();
        let b = Sandbox::create(base.path(), "d-1").unwrap();
        assert_ne!(a.root(), b.root(), "each drill gets its own directory");
        let mode = std::fs::metadata(a.restore_dir())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "restored data is private");
        std::fs::write(a.restore_dir().join("x"), b"data").unwrap();
        let root = a.root().to_path_buf();
        a.remove().unwrap();
        assert!(!root.exists());
        let root = b.root().to_path_buf();
        drop(b);
        assert!(!root.exists(), "dropping a sandbox removes it too");
    }

    #[test]
    fn archives_and_plain_sql_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let custom = dir.path().join("c");
        std::fs::write(&custom, b"PGDMP\x01\x0e\x00").unwrap();
        let plain = dir.path().join("p");
        std::fs::write(&plain, b"-- PostgreSQL database dump\nCREATE TABLE t();\n").unwrap();
        assert!(is_archive(&custom).unwrap());
        assert!(!is_archive(&plain).unwrap());
    }

    /// A real PostgreSQL (Debian's `postgresql` package): initdb, start on
    /// a socket, restore a plain and a custom-format dump, query, stop.
    #[test]
    fn a_throwaway_cluster_restores_a_dump_and_answers_a_query() {
        pg_bin().expect("install Debian's `postgresql` package: drill checks need initdb/pg_ctl");
        let base = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::create(base.path(), "pg").unwrap();
        let sql = sandbox.restore_dir().join("siak.sql");
        std::fs::write(
            &sql,
            "CREATE TABLE penduduk (nik text);\nINSERT INTO penduduk SELECT g::text FROM generate_series(1, 42) g;\n",
        )
        .unwrap();
        let cluster = PgCluster::start(sandbox.root()).unwrap();
        cluster.restore(&sql).unwrap();
        assert_eq!(
            cluster.query("SELECT count(*) FROM penduduk").unwrap(),
            "42"
        );
        let err = cluster.query("SELECT count(*) FROM tidak_ada").unwrap_err();
        assert!(err.to_string().contains("tidak_ada"), "{err}");
        let socket = sandbox.root().join("pg/run");
        cluster.stop().unwrap();
        assert!(
            !socket.join(".s.PGSQL.5432").exists(),
            "the server is stopped"
        );
        sandbox.remove().unwrap();
    }

    #[test]
    fn excerpts_are_cut_by_lines() {
        assert_eq!(excerpt("a\nb\nc\n", 2), "a\nb");
    }
}
