//! A loopback S3 server for the benchmark and for trying cadang by hand:
//! `cadang-test-s3 ROOT [PORT] [BUCKET...]`. Prints the endpoint and the
//! credentials to use, then serves until killed.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next().map(PathBuf::from) else {
        eprintln!("usage: cadang-test-s3 ROOT [PORT] [BUCKET...]");
        return ExitCode::from(2);
    };
    let port: u16 = match args.next().map(|p| p.parse()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("error: PORT must be a number");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("error: cannot create {}: {e}", root.display());
        return ExitCode::from(1);
    }
    let server = match cadang_testkit::S3Server::start_at(&root, port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the S3 server: {e}");
            return ExitCode::from(1);
        }
    };
    for bucket in args {
        server.create_bucket(&bucket);
    }
    println!("endpoint={}", server.endpoint());
    println!("AWS_ACCESS_KEY_ID={}", cadang_testkit::ACCESS_KEY);
    println!("AWS_SECRET_ACCESS_KEY={}", cadang_testkit::SECRET_KEY);
    loop {
        std::thread::park();
    }
}
