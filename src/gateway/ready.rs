//! `/readyz`: can every upstream be reached right now, and which policy
//! set do the replicas enforce?
//!
//! A stdio upstream is ready when its command resolves to an executable file;
//! a remote upstream when its URL answers HTTP at all (any status) within
//! [`PROBE_TIMEOUT`]; a shared child (`serve = "http"`) while it serves.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::audit::Audit;
use crate::config::UpstreamKind;
use crate::identity::Authenticator;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Signing keys of every configured tenant are loaded.
    pub identity: UpstreamReadiness,
    /// The audit log accepts writes (calls are refused while it does not).
    pub audit: UpstreamReadiness,
    /// The policy set this replica enforces, and whether every replica on
    /// the store enforces the same (a difference is reported, not refused:
    /// a rollout passes through it).
    pub policy: crate::replicas::PolicyAgreement,
    pub upstreams: BTreeMap<String, UpstreamReadiness>,
}

#[derive(Debug, Serialize)]
pub struct UpstreamReadiness {
    pub ready: bool,
    pub detail: String,
}

pub async fn check(
    identity: &Authenticator,
    audit: &Audit,
    upstreams: &[(String, UpstreamKind)],
    shared: &crate::executor::SharedServers,
    policy: crate::replicas::PolicyAgreement,
) -> Readiness {
    let probes = upstreams.iter().map(|(name, kind)| async move {
        let result = match kind {
            UpstreamKind::Stdio { command, cwd, .. } => executable(command, cwd.as_deref()),
            UpstreamKind::Http { url, .. } => reachable(url).await,
            UpstreamKind::Builtin { builtin } => Ok(format!("built into Warden ({builtin})")),
            UpstreamKind::Shared { .. } => shared
                .readiness(name)
                .unwrap_or_else(|| Err("shared child never started".to_owned())),
        };
        let status = match result {
            Ok(detail) => UpstreamReadiness {
                ready: true,
                detail,
            },
            Err(detail) => UpstreamReadiness {
                ready: false,
                detail,
            },
        };
        (name.clone(), status)
    });
    let upstreams: BTreeMap<_, _> = futures::future::join_all(probes)
        .await
        .into_iter()
        .collect();
    let identity = match identity.ready() {
        Ok(()) => UpstreamReadiness {
            ready: true,
            detail: "signing keys loaded".into(),
        },
        Err(detail) => UpstreamReadiness {
            ready: false,
            detail,
        },
    };
    let audit = match audit.problem() {
        None => UpstreamReadiness {
            ready: true,
            detail: format!("audit log {} writable", audit.origin()),
        },
        Some(detail) => UpstreamReadiness {
            ready: false,
            detail,
        },
    };
    Readiness {
        ready: identity.ready && audit.ready && upstreams.values().all(|u| u.ready),
        identity,
        audit,
        policy,
        upstreams,
    }
}

fn executable(command: &Path, cwd: Option<&Path>) -> Result<String, String> {
    let resolved = if command.components().count() > 1 {
        match cwd {
            Some(cwd) if command.is_relative() => cwd.join(command),
            _ => command.to_owned(),
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(command))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| format!("{} not found on PATH", command.display()))?
    };
    if is_executable(&resolved) {
        Ok(format!("command {}", resolved.display()))
    } else {
        Err(format!("{} is not an executable file", resolved.display()))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

async fn reachable(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(url).send().await {
        Ok(response) => Ok(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )),
        Err(error) if error.is_timeout() => {
            Err(format!("{url} did not answer within {PROBE_TIMEOUT:?}"))
        }
        Err(error) => Err(format!("{url} unreachable: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_command_and_dead_url_are_not_ready() {
        let upstreams = vec![
            (
                "gone".to_owned(),
                UpstreamKind::Stdio {
                    command: "warden-no-such-command".into(),
                    args: vec![],
                    env: Default::default(),
                    cwd: None,
                },
            ),
            (
                "sh".to_owned(),
                UpstreamKind::Stdio {
                    command: "sh".into(),
                    args: vec![],
                    env: Default::default(),
                    cwd: None,
                },
            ),
            (
                "down".to_owned(),
                UpstreamKind::Http {
                    // Port 9 (discard) on loopback: nothing listens here.
                    url: "http://127.0.0.1:9/mcp".into(),
                    headers: Default::default(),
                },
            ),
        ];
        let anonymous = crate::identity::IdentityConfig {
            allow_anonymous: true,
            ..Default::default()
        };
        let identity = Authenticator::start(anonymous, reqwest::Client::new());
        let dir = tempfile::tempdir().unwrap();
        let audit = crate::audit::test_audit(dir.path()).await;
        let agreement = crate::replicas::PolicyAgreement {
            hash: "sha256:abc".into(),
            agrees: false,
            replicas: 2,
            detail: "replica r2 enforces sha256:def".into(),
        };
        let shared = crate::executor::SharedServers::default();
        let report = check(&identity, &audit, &upstreams, &shared, agreement).await;
        assert!(report.audit.ready, "{:?}", report.audit);
        // A policy difference between replicas is reported, never the
        // reason a replica is unready.
        assert!(!report.policy.agrees);
        assert_eq!(report.policy.hash, "sha256:abc");
        assert!(!report.ready);
        assert!(!report.upstreams["gone"].ready);
        assert!(report.upstreams["sh"].ready, "{:?}", report.upstreams["sh"]);
        assert!(!report.upstreams["down"].ready);
        assert!(report.upstreams["down"].detail.contains("unreachable"));
    }
}
