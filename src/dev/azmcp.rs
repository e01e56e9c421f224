//! The official Azure MCP Server (`azmcp`) behind `warden dev`: where it is
//! found, how it is started, and the environment that runs it offline
//! against the ARM simulator and the dev issuer.
//!
//! azmcp 2.0.5 has no setting for another ARM endpoint or authority host
//! (`--cloud` takes only the three named clouds), so it is given the
//! egress proxy instead (`HTTPS_PROXY`, and the dev CA in `SSL_CERT_FILE`;
//! see [`super::proxy`]). It signs in as a service principal of its own
//! (`EnvironmentCredential`, with `AZURE_TOKEN_CREDENTIALS=prod` so that it
//! never tries a browser), and both of its telemetry exports are off.
//!
//! It runs in one of two ways ([`Serve`]): by default one azmcp for every
//! session, started with Warden and serving Streamable HTTP on a Unix
//! socket in a directory only Warden's user may open (`serve = "http"`);
//! or one azmcp per client session over stdio (`--azure-mcp-serve stdio`),
//! about 100 MB of memory and a second of start each.
//!
//! Shared, azmcp runs with `--dangerously-disable-http-incoming-auth`: its
//! incoming authentication would want an Entra ID token for an app
//! registration of its own on every request (and by default on-behalf-of
//! tokens for Azure), which Warden does not hold; instead it is reachable
//! only through its socket, whose directory (mode 0700) only Warden's user
//! can enter, and Kestrel binds nothing else (the endpoint set in the
//! environment replaces azmcp's default `127.0.0.1:5001`). A process of
//! the same user could connect, but that user can already read Warden's
//! memory and files.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The upstream's name in `warden dev`: its tools are `azmcp__<tool>`.
pub const UPSTREAM: &str = "azmcp";

/// Its arguments: the MCP server over stdio, every tool listed on its own.
pub const ARGS: [&str; 4] = ["server", "start", "--mode", "all"];

/// Its arguments when shared: the same server over Streamable HTTP, with
/// no incoming authentication (see the module documentation).
pub const HTTP_ARGS: [&str; 7] = [
    "server",
    "start",
    "--mode",
    "all",
    "--transport",
    "http",
    "--dangerously-disable-http-incoming-auth",
];

/// Its environment when shared, besides [`environment`]: Kestrel's one
/// endpoint, the Unix socket Warden names (`{socket}`); and no redirect
/// to an HTTPS port it does not have.
pub const HTTP_ENV: [(&str, &str); 2] = [
    ("Kestrel__Endpoints__warden__Url", "http://unix:{socket}"),
    ("AZURE_MCP_DANGEROUSLY_DISABLE_HTTPS_REDIRECTION", "true"),
];

/// Where azmcp serves MCP over HTTP: the root.
pub const HTTP_PATH: &str = "/";

pub use crate::config::Serve;

/// How to install it where `warden dev` looks first.
pub const INSTALL_SCRIPT: &str = "scripts/install-test-deps.sh";

/// The executable's file name.
const EXECUTABLE: &str = if cfg!(windows) { "azmcp.exe" } else { "azmcp" };

/// Where `scripts/install-test-deps.sh` puts azmcp under a checkout:
/// `.deps/node/node_modules/@azure/mcp-<platform>-<arch>/dist/azmcp`, with
/// Node's names for the platform and architecture (`linux-x64`,
/// `darwin-arm64`, `win32-x64`, ...); `None` on a platform npm has no
/// azmcp package for.
pub fn deps_path(root: &Path) -> Option<PathBuf> {
    let platform = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "windows" => "win32",
        _ => return None,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        _ => return None,
    };
    Some(
        root.join(".deps/node/node_modules/@azure")
            .join(format!("mcp-{platform}-{arch}"))
            .join("dist")
            .join(EXECUTABLE),
    )
}

/// How azmcp was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--azure-mcp PATH`.
    Flag,
    /// The install script's `.deps/` under the working directory.
    Deps,
    /// `azmcp` on `PATH`.
    Path,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Flag => "--azure-mcp",
            Source::Deps => ".deps/",
            Source::Path => "PATH",
        })
    }
}

/// An azmcp executable and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
}

/// Finds azmcp: `explicit` (`--azure-mcp`; it must be a file), else the
/// install script's copy under `cwd` ([`deps_path`]), else `azmcp` in the
/// directories of `path_var` (`PATH`). `Ok(None)` when there is none.
pub fn find(
    explicit: Option<&Path>,
    cwd: &Path,
    path_var: Option<&OsStr>,
) -> Result<Option<Found>, String> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(format!(
                "--azure-mcp {}: no such file (the azmcp executable, e.g. {})",
                path.display(),
                deps_path(Path::new("."))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "azmcp".to_owned()),
            ));
        }
        return Ok(Some(Found {
            path: path.to_owned(),
            source: Source::Flag,
        }));
    }
    if let Some(path) = deps_path(cwd).filter(|p| p.is_file()) {
        return Ok(Some(Found {
            path,
            source: Source::Deps,
        }));
    }
    let on_path = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(EXECUTABLE))
        .find(|candidate| candidate.is_file());
    Ok(on_path.map(|path| Found {
        path,
        source: Source::Path,
    }))
}

/// What azmcp needs to run behind `warden dev`.
#[derive(Debug, Clone)]
pub struct Offline<'a> {
    /// The egress proxy's URL (`http://127.0.0.1:<port>`).
    pub proxy_url: &'a str,
    /// The dev CA's certificate file.
    pub ca_file: &'a Path,
    /// The dev tenant.
    pub tenant_id: &'a str,
    /// azmcp's service principal: its client id and secret.
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// azmcp's environment behind `warden dev` (nothing else is inherited but
/// `PATH`, `HOME`, `LANG`, `LC_ALL`, `TMPDIR` and `USER`):
///
/// * `AZURE_TOKEN_CREDENTIALS=prod`: environment, workload identity, then
///   managed identity; never a browser (which also keeps azmcp from
///   printing on stdout);
/// * `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`: its
///   service principal in the dev tenant;
/// * `AZURE_MCP_COLLECT_TELEMETRY=false` and
///   `AZURE_MCP_COLLECT_TELEMETRY_MICROSOFT=false`: release builds export
///   to Microsoft's own Application Insights unless the second is off;
/// * `HTTPS_PROXY`, `SSL_CERT_FILE`: the egress proxy and its CA, the only
///   CA azmcp then trusts;
/// * `DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1`: no ICU library needed.
pub fn environment(offline: &Offline<'_>) -> BTreeMap<String, String> {
    [
        ("AZURE_TOKEN_CREDENTIALS", "prod"),
        ("AZURE_TENANT_ID", offline.tenant_id),
        ("AZURE_CLIENT_ID", offline.client_id),
        ("AZURE_CLIENT_SECRET", offline.client_secret),
        ("AZURE_MCP_COLLECT_TELEMETRY", "false"),
        ("AZURE_MCP_COLLECT_TELEMETRY_MICROSOFT", "false"),
        ("HTTPS_PROXY", offline.proxy_url),
        ("SSL_CERT_FILE", &offline.ca_file.display().to_string()),
        ("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The `[upstreams.azmcp]` table that starts `command` with `env`, one
/// child per session (`Serve::Stdio`) or one shared (`Serve::Http`).
pub fn upstream_toml(command: &Path, env: &BTreeMap<String, String>, serve: Serve) -> String {
    let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let (args, extra, tail) = match serve {
        Serve::Stdio => (&ARGS[..], &[][..], String::new()),
        Serve::Http => (
            &HTTP_ARGS[..],
            &HTTP_ENV[..],
            format!(
                "serve = \"http\"\nlisten = \"unix\"\nmcp_path = {}\n",
                quote(HTTP_PATH)
            ),
        ),
    };
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let mut env = env.clone();
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
        .collect();
    format!(
        "\n[upstreams.{UPSTREAM}]\ncommand = {}\nargs = [{}]\nenv = {{ {} }}\n{tail}",
        quote(&command.display().to_string()),
        args.join(", "),
        env.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_flag_then_deps_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("checkout");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path_var = std::env::join_paths([dir.path().join("nothing"), bin.clone()]).unwrap();

        assert_eq!(find(None, &root, Some(&path_var)).unwrap(), None);
        assert_eq!(find(None, &root, None).unwrap(), None);

        std::fs::write(bin.join(EXECUTABLE), "").unwrap();
        let found = find(None, &root, Some(&path_var)).unwrap().unwrap();
        assert_eq!(found.path, bin.join(EXECUTABLE));
        assert_eq!(found.source, Source::Path);

        let Some(deps) = deps_path(&root) else {
            return;
        };
        assert!(deps.starts_with(root.join(".deps/node/node_modules/@azure")));
        std::fs::create_dir_all(deps.parent().unwrap()).unwrap();
        std::fs::write(&deps, "").unwrap();
        let found = find(None, &root, Some(&path_var)).unwrap().unwrap();
        assert_eq!((found.path, found.source), (deps.clone(), Source::Deps));

        let mine = dir.path().join("my-azmcp");
        std::fs::write(&mine, "").unwrap();
        let found = find(Some(&mine), &root, Some(&path_var)).unwrap().unwrap();
        assert_eq!((found.path, found.source), (mine, Source::Flag));
        let error = find(Some(&dir.path().join("missing")), &root, None).unwrap_err();
        assert!(error.contains("no such file"), "{error}");
    }

    #[test]
    fn the_upstream_table_parses_with_its_environment() {
        let env = environment(&Offline {
            proxy_url: "http://127.0.0.1:4000",
            ca_file: Path::new("/tmp/dev \"x\"/dev-ca.pem"),
            tenant_id: "t",
            client_id: "c",
            client_secret: "s3cret",
        });
        assert_eq!(env["AZURE_TOKEN_CREDENTIALS"], "prod");
        assert_eq!(env["AZURE_MCP_COLLECT_TELEMETRY"], "false");
        assert_eq!(env["AZURE_MCP_COLLECT_TELEMETRY_MICROSOFT"], "false");
        assert_eq!(env["HTTPS_PROXY"], "http://127.0.0.1:4000");
        let text = upstream_toml(Path::new("/opt/a b/azmcp"), &env, Serve::Stdio);
        let table: toml::Table = toml::from_str(&text).unwrap();
        let upstream = &table["upstreams"][UPSTREAM];
        assert_eq!(upstream["command"].as_str(), Some("/opt/a b/azmcp"));
        assert_eq!(
            upstream["args"].as_array().unwrap().len(),
            ARGS.len(),
            "{text}"
        );
        assert_eq!(
            upstream["env"]["SSL_CERT_FILE"].as_str(),
            Some("/tmp/dev \"x\"/dev-ca.pem")
        );
        assert_eq!(
            upstream["env"]["AZURE_CLIENT_SECRET"].as_str(),
            Some("s3cret")
        );
        assert!(upstream.get("serve").is_none(), "{text}");

        let text = upstream_toml(Path::new("/opt/azmcp"), &env, Serve::Http);
        let table: toml::Table = toml::from_str(&text).unwrap();
        let upstream = &table["upstreams"][UPSTREAM];
        assert_eq!(upstream["serve"].as_str(), Some("http"));
        assert_eq!(upstream["listen"].as_str(), Some("unix"));
        assert_eq!(upstream["mcp_path"].as_str(), Some("/"));
        let args: Vec<&str> = upstream["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert_eq!(args, HTTP_ARGS);
        assert_eq!(
            upstream["env"]["Kestrel__Endpoints__warden__Url"].as_str(),
            Some("http://unix:{socket}")
        );
        assert_eq!(
            upstream["env"]["HTTPS_PROXY"].as_str(),
            Some("http://127.0.0.1:4000")
        );
    }
}
