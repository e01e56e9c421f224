//! A Warden that decides with real policies, trusting a dev issuer, in
//! front of the demo upstream (whose `echo` records every call it
//! receives), with a test catalog that maps demo tools onto Azure
//! operations; optionally with the ARM simulator as its Azure, where it
//! looks up the facts (tags, location, resource group) of the resources
//! the test catalog names.

use std::path::{Path, PathBuf};

use warden::azure::sim::{self, SimConfig, Simulator};
use warden::identity::dev::{DEV_TENANT, TokenOptions};

use super::issuer::Issuer;
use super::{Client, InProcess, Served, Warden, connect_as, example};

/// The Warden runs as a process ([`Gate::start`]) or in this one
/// ([`Gate::start_in_process`]).
pub struct Gate<W = Warden> {
    pub issuer: Issuer,
    pub warden: W,
    pub calls: PathBuf,
    pub scratch: tempfile::TempDir,
    /// The ARM simulator Warden looks resource facts up in
    /// ([`Gate::start_in_process_with_arm`]); without it every resource's
    /// facts are `unavailable`.
    pub arm: Option<Simulator>,
}

impl Gate<Warden> {
    /// `catalog`: the test catalog file; `policy`: the body of `[policy]`
    /// (e.g. `dir = "..."`); `tables`: more config tables (e.g.
    /// `[approvals]`).
    pub async fn start(catalog: &str, policy: &str, tables: &str) -> Gate {
        Self::with(catalog, policy, tables, false, Warden::start_with_policy).await
    }
}

impl Gate<InProcess> {
    /// [`Gate::start`] with Warden in this process.
    pub async fn start_in_process(catalog: &str, policy: &str, tables: &str) -> Gate<InProcess> {
        Self::with(catalog, policy, tables, false, InProcess::start_with_policy).await
    }

    /// [`Gate::start_in_process`] with the ARM simulator as Warden's Azure
    /// (`[azure]`, with the production client-secret credential against
    /// the dev issuer): resources the catalog names in its seeded estate
    /// (e.g. `web-01` in `dev-web` of [`sim::DEV_SUBSCRIPTION`]) have
    /// complete facts.
    pub async fn start_in_process_with_arm(
        catalog: &str,
        policy: &str,
        tables: &str,
    ) -> Gate<InProcess> {
        Self::with(catalog, policy, tables, true, InProcess::start_with_policy).await
    }
}

impl<W: Served> Gate<W> {
    async fn with(
        catalog: &str,
        policy: &str,
        tables: &str,
        with_arm: bool,
        start: fn(&str, &str, &str, &str) -> W,
    ) -> Gate<W> {
        let issuer = Issuer::start().await;
        let scratch = tempfile::tempdir().unwrap();
        let (arm, azure) = if with_arm {
            let (sim, azure) = arm_simulator(&issuer, scratch.path()).await;
            (Some(sim), azure)
        } else {
            (None, String::new())
        };
        let calls = scratch.path().join("calls.log");
        let catalog_dir = scratch.path().join("catalog");
        std::fs::create_dir(&catalog_dir).unwrap();
        std::fs::write(catalog_dir.join("demo.toml"), catalog).unwrap();
        let upstream = format!(
            "[catalog]\ndir = {catalog_dir:?}\n{tables}\n{azure}[upstreams.demo]\ncommand = {:?}\n\
             env = {{ DEMO_CALL_LOG = {calls:?} }}\n",
            example("demo_upstream").display().to_string()
        );
        let warden = start("", &issuer.identity_toml(), &upstream, policy);
        Gate {
            issuer,
            warden,
            calls,
            scratch,
            arm,
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

/// The ARM simulator (its database in `dir`) trusting `issuer`, and the
/// `[azure]` tables that make it Warden's Azure.
pub async fn arm_simulator(issuer: &Issuer, dir: &Path) -> (Simulator, String) {
    let config = SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("arm-sim.db"),
        sim::dev_identity_config(&issuer.issuer, &issuer.base),
    );
    let sim = Simulator::start(config).await.unwrap();
    let client = issuer.issuer.dev_client().unwrap();
    let azure = format!(
        "[azure.arm]\nendpoint = {:?}\naudience = {:?}\nretry_delay = \"50ms\"\n\
         [azure.credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\n\
         secret_file = {:?}\nauthority_host = {:?}\n",
        sim.base_url(),
        sim::ARM_AUDIENCE,
        client.client_id,
        client.secret_file.display().to_string(),
        issuer.base,
    );
    (sim, azure)
}

/// Makes policy `id` of the policy directory `policies` a `@shadow` policy
/// (evaluated and recorded, not enforced), for a test about something it
/// would otherwise decide first.
pub fn shadow_policy(policies: &Path, id: &str) {
    let marker = format!("@id({id:?})");
    for entry in std::fs::read_dir(policies).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains(&marker) {
            std::fs::write(&path, text.replace(&marker, &format!("@shadow\n{marker}"))).unwrap();
            return;
        }
    }
    panic!("no policy {id} in {}", policies.display());
}

/// The ARM requests `sim` served, newest first: "METHOD path".
pub async fn sim_served(sim: &Simulator) -> Vec<String> {
    let log: serde_json::Value =
        reqwest::get(format!("{}/_sim/requests?limit=1000", sim.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    log["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or_default(),
                r["path"].as_str().unwrap_or_default()
            )
        })
        .collect()
}
