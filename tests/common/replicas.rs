//! What the PostgreSQL and replica tests share: the server, a replica's
//! directory on a shared store, and verifying a shared log.

use std::path::Path;

use serde_json::Value;
use warden::audit::KeyFiles;

use super::Setup;

/// The local PostgreSQL server the tests make their schemas in
/// (`WARDEN_TEST_POSTGRES` names another).
pub fn postgres_admin() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A replica's directory: `setup` written, its store `store_url`, and the
/// audit keys of the replica in `keys_from` (so that all write one log).
pub fn replica_dir(
    setup: &Setup<'_>,
    store_url: &str,
    keys_from: Option<&Path>,
) -> tempfile::TempDir {
    let dir = setup.write();
    if let Some(first) = keys_from {
        let from = KeyFiles::in_dir(first);
        let to = KeyFiles::in_dir(dir.path());
        for (a, b) in [
            (&from.signing_key, &to.signing_key),
            (&from.hmac_key, &to.hmac_key),
            (&from.public_key, &to.public_key),
        ] {
            std::fs::copy(a, b).unwrap();
        }
    }
    let config_path = dir.path().join("warden.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "[store]\npath = \"warden.db\"\n",
        &format!("[store]\nurl = {store_url:?}\n"),
    );
    assert!(config.contains("url = \"postgres://"), "{config}");
    std::fs::write(&config_path, config).unwrap();
    dir
}

/// `warden audit verify --json --db <db> --key <key>`: exit code and report.
pub fn verify_db(db: &str, key: &Path) -> (i32, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--json", "--db", db, "--key"])
        .arg(key)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}
