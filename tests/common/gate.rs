//! A Warden that decides with real policies, trusting a dev issuer, in
//! front of the demo upstream (whose `echo` records every call it
//! receives), with a test catalog that maps demo tools onto Azure
//! operations.

use std::path::{Path, PathBuf};

use warden::identity::dev::TokenOptions;

use super::issuer::Issuer;
use super::{Client, InProcess, Served, Warden, connect_as, example};

/// The Warden runs as a process ([`Gate::start`]) or in this one
/// ([`Gate::start_in_process`]).
pub struct Gate<W = Warden> {
    pub issuer: Issuer,
    pub warden: W,
    pub calls: PathBuf,
    pub scratch: tempfile::TempDir,
}

impl Gate<Warden> {
    /// `catalog`: the test catalog file; `policy`: the body of `[policy]`
    /// (e.g. `dir = "..."`); `tables`: more config tables (e.g.
    /// `[approvals]`).
    pub async fn start(catalog: &str, policy: &str, tables: &str) -> Gate {
        Self::with(catalog, policy, tables, Warden::start_with_policy).await
    }
}

impl Gate<InProcess> {
    /// [`Gate::start`] with Warden in this process.
    pub async fn start_in_process(catalog: &str, policy: &str, tables: &str) -> Gate<InProcess> {
        Self::with(catalog, policy, tables, InProcess::start_with_policy).await
    }
}

impl<W: Served> Gate<W> {
    async fn with(
        catalog: &str,
        policy: &str,
        tables: &str,
        start: fn(&str, &str, &str, &str) -> W,
    ) -> Gate<W> {
        let issuer = Issuer::start().await;
        let scratch = tempfile::tempdir().unwrap();
        let calls = scratch.path().join("calls.log");
        let catalog_dir = scratch.path().join("catalog");
        std::fs::create_dir(&catalog_dir).unwrap();
        std::fs::write(catalog_dir.join("demo.toml"), catalog).unwrap();
        let upstream = format!(
            "[catalog]\ndir = {catalog_dir:?}\n{tables}\n[upstreams.demo]\ncommand = {:?}\n\
             env = {{ DEMO_CALL_LOG = {calls:?} }}\n",
            example("demo_upstream").display().to_string()
        );
        let warden = start("", &issuer.identity_toml(), &upstream, policy);
        Gate {
            issuer,
            warden,
            calls,
            scratch,
        }
    }

    pub fn token(&self, user: &str, roles: &[&str], mfa: bool) -> String {
        self.issuer.mint(&TokenOptions {
            user: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa,
            ..TokenOptions::default()
        })
    }

    pub async fn client(&self, user: &str, roles: &[&str], mfa: bool) -> Client {
        let token = self.token(user, roles, mfa);
        connect_as(&self.warden.url(), Some(&token)).await.0
    }

    /// What the upstream's `echo` received, one text per line.
    pub fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A copy of the repository's baseline policies in `dir/policies`, plus
/// `extra` as `test.cedar` when given; the directory.
pub fn baseline_copy(dir: &Path, extra: Option<&str>) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(baseline).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
        }
    }
    if let Some(extra) = extra {
        std::fs::write(policies.join("test.cedar"), extra).unwrap();
    }
    policies
}
