//! An agent with the IAM-restricted store credentials of `docs/sites.md`
//! (moto in server mode with its IAM enforcement switched on): the backup
//! succeeds with the agent's keys, and with those keys a delete of a pack,
//! an index file or a snapshot is refused, as is a delete of any version of
//! one, a create-only overwrite, and any write outside its PD's prefix. A
//! plain overwrite (which IAM cannot refuse without AWS's `s3:if-none-match`
//! condition key, which moto does not evaluate) leaves the original version
//! in the versioned bucket, out of the agent's reach, and the custodian's
//! keys bring the repository back.
//!
//! moto 5.2 miscomputes SigV4 for query strings holding an encoded `/`
//! (every prefixed ListObjectsV2 fails with SignatureDoesNotMatch), so the
//! server here runs with moto's signature comparison turned off. The access
//! key still selects the IAM user, and that user's policy decides every
//! request: that is what this test is about.

mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const BUCKET: &str = "pd-store";
const PREFIX: &str = "dinkes";

/// The agent's policy, as `docs/sites.md` gives it for AWS (without the
/// condition keys moto ignores): list the bucket, read and create objects
/// in its PD's prefix, delete only lock files (and their versions).
fn agent_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "FindAndListItsPrefix", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": format!("arn:aws:s3:::{BUCKET}")},
            {"Sid": "ReadAndCreate", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
             "Resource": format!("arn:aws:s3:::{BUCKET}/{PREFIX}/*")},
            {"Sid": "RemoveItsLocks", "Effect": "Allow",
             "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
             "Resource": format!("arn:aws:s3:::{BUCKET}/{PREFIX}/locks/*")}
        ]
    })
}

/// Admin side and raw S3 requests, with boto3 (installed with moto).
const HELPER: &str = r#"
import hashlib, json, sys, urllib.request
import boto3, botocore.config, botocore.exceptions

def clients(endpoint, key, secret):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id=key, aws_secret_access_key=secret)
    cfg = botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return boto3.client("s3", config=cfg, **kw), boto3.client("iam", **kw)

def setup(a):
    s3, iam = clients(a["endpoint"], "testing", "testing")
    s3.create_bucket(Bucket=a["bucket"])
    s3.put_bucket_versioning(Bucket=a["bucket"], VersioningConfiguration={"Status": "Enabled"})
    out = {}
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    for user, policy in [("custodian", everything), ("agent", a["policy"])]:
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = [k["AccessKeyId"], k["SecretAccessKey"]]
    # From here on moto authenticates and authorises every request.
    req = urllib.request.Request(a["endpoint"] + "/moto-api/reset-auth", data=b"0",
                                 method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req).read()
    return out

def attempt(a):
    s3, _ = clients(a["endpoint"], a["key"], a["secret"])
    op, b = a["op"], a["bucket"]
    version = {"VersionId": op["version"]} if "version" in op else {}
    try:
        if op["op"] == "delete":
            s3.delete_object(Bucket=b, Key=op["key"], **version)
            return {"ok": True}
        if op["op"] == "put":
            extra = {"IfNoneMatch": "*"} if op.get("create_only") else {}
            r = s3.put_object(Bucket=b, Key=op["key"], Body=op["body"].encode(), **extra)
            return {"ok": True, "version": r.get("VersionId")}
        if op["op"] == "get":
            body = s3.get_object(Bucket=b, Key=op["key"], **version)["Body"].read()
            return {"ok": True, "sha256": hashlib.sha256(body).hexdigest()}
        if op["op"] == "versions":
            r = s3.list_object_versions(Bucket=b, Prefix=op["key"])
            return {"ok": True, "versions": [v["VersionId"] for v in r.get("Versions", []) if v["Key"] == op["key"]]}
        if op["op"] == "list":
            r = s3.list_objects_v2(Bucket=b, Prefix=op["prefix"])
            return {"ok": True, "keys": [o["Key"] for o in r.get("Contents", [])]}
    except botocore.exceptions.ClientError as e:
        return {"ok": False, "error": e.response["Error"]["Code"]}
    raise SystemExit("unknown op " + op["op"])

cmd, args = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps(setup(args) if cmd == "setup" else attempt(args)))
"#;

/// Starts moto's server with IAM enforcement available (see the module
/// documentation for the one moto check that is turned off).
const SERVER: &str = r#"
import sys
from moto.iam.access_control import IAMRequestBase
IAMRequestBase.check_signature = lambda self: None
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

struct Server {
    child: Child,
    endpoint: String,
    helper: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

impl Server {
    fn start(dir: &Path) -> Server {
        let probe = Command::new(python())
            .args(["-c", "import moto.server, flask, boto3"])
            .status();
        assert!(
            matches!(probe, Ok(s) if s.success()),
            "this test needs moto's server and boto3: run `.ci/run` or `python3 -m pip install 'moto[server]'`"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(python())
            .args(["-c", SERVER, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let helper = dir.join("iam_helper.py");
        fs::write(&helper, HELPER).unwrap();
        let mut server = Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            helper,
        };
        // A readiness wait, not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("moto exited early ({st})");
            }
            assert!(Instant::now() < deadline, "moto did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn helper(&self, cmd: &str, args: Value) -> Value {
        let out = Command::new(python())
            .arg(&self.helper)
            .arg(cmd)
            .arg(args.to_string())
            .output()
            .expect("python runs");
        assert!(out.status.success(), "helper {cmd}: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("helper prints JSON")
    }

    fn url(&self) -> String {
        format!(
            "s3://{BUCKET}/{PREFIX}?endpoint={}&region=us-east-1",
            self.endpoint
        )
    }
}

#[derive(Clone)]
struct Keys {
    id: String,
    secret: String,
}

impl Keys {
    fn of(v: &Value, who: &str) -> Keys {
        Keys {
            id: v[who][0].as_str().unwrap().into(),
            secret: v[who][1].as_str().unwrap().into(),
        }
    }
}

/// `cadang` with `keys` as its only S3 credentials.
fn cadang_as(keys: &Keys, args: &[&str]) -> Output {
    cadang(args)
        .env("AWS_ACCESS_KEY_ID", &keys.id)
        .env("AWS_SECRET_ACCESS_KEY", &keys.secret)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("cadang runs")
}

fn try_as(server: &Server, keys: &Keys, op: Value) -> Value {
    server.helper(
        "try",
        json!({"endpoint": server.endpoint, "bucket": BUCKET, "key": keys.id, "secret": keys.secret, "op": op}),
    )
}

fn keys_under(server: &Server, keys: &Keys, dir: &str) -> Vec<String> {
    let r = try_as(
        server,
        keys,
        json!({"op": "list", "prefix": format!("{PREFIX}/{dir}/")}),
    );
    assert_eq!(r["ok"], true, "list {dir}: {r}");
    r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn assert_denied(r: &Value, what: &str) {
    assert_eq!(r["ok"], false, "{what} must be refused: {r}");
    assert_eq!(r["error"], "AccessDenied", "{what}: {r}");
}

#[test]
fn a_restricted_agent_backs_up_but_cannot_destroy_history() {
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(t.path());
    let keys = server.helper(
        "setup",
        json!({"endpoint": server.endpoint, "bucket": BUCKET, "policy": agent_policy()}),
    );
    let (custodian, agent) = (Keys::of(&keys, "custodian"), Keys::of(&keys, "agent"));
    let url = server.url();
    let creds = t.path().join("agent.credentials");

    // The custodian creates the repository; the agent backs up twice with
    // its own keys only (the second run reads the first's snapshot).
    let out = cadang_as(
        &custodian,
        &[
            "repo",
            "init",
            "--repo",
            &url,
            "--pd",
            "DINKES",
            "--agent-credentials",
            s(&creds),
        ],
    );
    assert!(out.status.success(), "init: {}", text(&out));
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("rekam-medis.bin"), noise(700 * 1024, 5)).unwrap();
    fs::write(src.join("catatan.txt"), b"jadwal imunisasi").unwrap();
    let cache = t.path().join("cache");
    let backup = |what: &str| {
        let out = cadang_as(
            &agent,
            &[
                "backup",
                "--repo",
                &url,
                "--credentials",
                s(&creds),
                "--cache-dir",
                s(&cache),
                "--json",
                s(&src),
            ],
        );
        assert!(
            out.status.success(),
            "{what} with the agent's keys: {}",
            text(&out)
        );
    };
    backup("first backup");
    fs::write(src.join("catatan.txt"), b"jadwal imunisasi, diperbarui").unwrap();
    backup("second backup");
    assert!(
        keys_under(&server, &custodian, "locks").is_empty(),
        "the agent removed its own locks"
    );

    // With the agent's keys: no delete of what history is made of.
    let pack = keys_under(&server, &custodian, "packs")[0].clone();
    let index = keys_under(&server, &custodian, "index")[0].clone();
    let snapshot = keys_under(&server, &custodian, "snapshots")[0].clone();
    for (what, key) in [
        ("pack", &pack),
        ("index file", &index),
        ("snapshot", &snapshot),
    ] {
        assert_denied(
            &try_as(&server, &agent, json!({"op": "delete", "key": key})),
            &format!("delete of a {what}"),
        );
        let versions = try_as(&server, &custodian, json!({"op": "versions", "key": key}));
        let v = versions["versions"][0].as_str().unwrap().to_string();
        assert_denied(
            &try_as(
                &server,
                &agent,
                json!({"op": "delete", "key": key, "version": v}),
            ),
            &format!("delete of a {what}'s version"),
        );
    }
    assert_denied(
        &try_as(
            &server,
            &agent,
            json!({"op": "delete", "key": format!("{PREFIX}/config")}),
        ),
        "delete of config",
    );
    assert_denied(
        &try_as(
            &server,
            &agent,
            json!({"op": "put", "key": "bappeda/config", "body": "{}"}),
        ),
        "a write into another PD's prefix",
    );
    // cadang's own writes are create-only (If-None-Match): refused in place.
    let r = try_as(
        &server,
        &agent,
        json!({"op": "put", "key": &snapshot, "body": "{}", "create_only": true}),
    );
    assert_eq!(
        r["error"], "PreconditionFailed",
        "create-only overwrite: {r}"
    );

    // A rogue plain overwrite lands as a new version; the original stays,
    // out of the agent's reach, and the custodian puts it back.
    let before = try_as(&server, &custodian, json!({"op": "get", "key": &snapshot}));
    let original = try_as(
        &server,
        &custodian,
        json!({"op": "versions", "key": &snapshot}),
    )["versions"][0]
        .as_str()
        .unwrap()
        .to_string();
    let rogue = try_as(
        &server,
        &agent,
        json!({"op": "put", "key": &snapshot, "body": "{\"forged\":1}"}),
    );
    assert_eq!(rogue["ok"], true, "{rogue}");
    assert_denied(
        &try_as(
            &server,
            &agent,
            json!({"op": "delete", "key": &snapshot, "version": &original}),
        ),
        "delete of the overwritten snapshot's original version",
    );
    let kept = try_as(
        &server,
        &custodian,
        json!({"op": "get", "key": &snapshot, "version": &original}),
    );
    assert_eq!(
        kept["sha256"], before["sha256"],
        "the original snapshot is intact"
    );
    let rogue_version = rogue["version"].as_str().unwrap();
    let r = try_as(
        &server,
        &custodian,
        json!({"op": "delete", "key": &snapshot, "version": rogue_version}),
    );
    assert_eq!(
        r["ok"], true,
        "the custodian removes the rogue version: {r}"
    );
    let check = cadang_as(&custodian, &["check", "--repo", &url, "--read-data"]);
    assert!(
        check.status.success(),
        "check with the custodian's keys: {}",
        text(&check)
    );
}
