//! The drill's check on the restored data: a command, or a throwaway
//! PostgreSQL cluster with the dump restored and the policy's query run.

use std::path::{Path, PathBuf};

use cadang_proto::drill::{CheckOutcome, DrillCheckSpec};

use super::super::sandbox::{excerpt, PgCluster};

pub(super) fn run_check(
    check: &DrillCheckSpec,
    sandbox: &Path,
    dir: &Path,
    files: &[(String, PathBuf)],
) -> CheckOutcome {
    match check {
        DrillCheckSpec::Command { command } => command_check(command, sandbox, dir, files),
        DrillCheckSpec::Postgres { stream, query, min } => {
            postgres_check(stream, query, *min, sandbox, files)
        }
    }
}

fn command_check(
    command: &str,
    sandbox: &Path,
    dir: &Path,
    files: &[(String, PathBuf)],
) -> CheckOutcome {
    let file = files
        .first()
        .map(|(_, p)| p.display().to_string())
        .unwrap_or_default();
    let line = command
        .replace("{file}", &shell_quote(&file))
        .replace("{dir}", &shell_quote(&dir.display().to_string()));
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &line])
        .current_dir(sandbox)
        .stdin(std::process::Stdio::null())
        .output();
    let (passed, got, text) = match out {
        Ok(o) => {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), o.status.to_string(), t)
        }
        Err(e) => (false, "did not start".into(), e.to_string()),
    };
    CheckOutcome {
        kind: "command".into(),
        run: command.into(),
        expected: "exit 0".into(),
        got,
        passed,
        output_excerpt: excerpt(&text, 20),
    }
}

fn postgres_check(
    stream: &str,
    query: &str,
    min: i64,
    sandbox_root: &Path,
    files: &[(String, PathBuf)],
) -> CheckOutcome {
    let mut outcome = CheckOutcome {
        kind: "postgres-query".into(),
        run: query.into(),
        expected: format!("≥ {min}"),
        got: String::new(),
        passed: false,
        output_excerpt: String::new(),
    };
    let wanted = format!("/{stream}");
    let Some((_, dump)) = files
        .iter()
        .find(|(p, _)| *p == wanted || p.ends_with(&wanted))
    else {
        outcome.got = "no dump".into();
        outcome.output_excerpt = format!("the snapshot has no dump stream {stream:?}");
        return outcome;
    };
    let run = || -> Result<(String, String), super::super::sandbox::SandboxError> {
        let cluster = PgCluster::start(sandbox_root)?;
        let restored = cluster.restore(dump)?;
        let got = cluster.query(query)?;
        cluster.stop()?;
        Ok((got, restored))
    };
    match run() {
        Ok((got, restored)) => {
            let number = got
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i64>().ok());
            outcome.passed = number.is_some_and(|n| n >= min);
            outcome.output_excerpt = excerpt(&format!("{restored}{got}"), 20);
            outcome.got = got;
        }
        Err(e) => {
            outcome.got = "error".into();
            outcome.output_excerpt = excerpt(&e.to_string(), 20);
        }
    }
    outcome
}

/// Single-quotes `s` for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_check_passes_on_exit_zero_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("dump");
        std::fs::write(&f, b"x").unwrap();
        let files = vec![("/dump".to_string(), f)];
        let ok = command_check("test -s {file}", dir.path(), dir.path(), &files);
        assert!(ok.passed, "{ok:?}");
        let bad = command_check("echo broken; exit 3", dir.path(), dir.path(), &files);
        assert!(!bad.passed);
        assert!(bad.output_excerpt.contains("broken"));
    }
}
