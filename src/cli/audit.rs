//! `warden audit`: keys, offline verification, export, live tail.

use std::path::PathBuf;

use warden::audit::export;
use warden::store::Location;

use super::output::{self, errln, out, outln};

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Create a checkpoint signing key (named for the log's origin), its
    /// public key, and an HMAC key for redaction. Never overwrites.
    Keygen {
        /// The log's origin, e.g. warden.contoso.com/audit/prod-1 (no spaces or '+').
        #[arg(long)]
        origin: String,
        /// Where to write audit-signing.key, audit.pub and audit-hmac.key.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Only a signing key and its public key (for a key rotation).
        #[arg(long)]
        no_hmac: bool,
    },
    /// Verify a log offline; exit 0 when it verifies, 1 when it does not,
    /// 2 when it cannot be read.
    Verify {
        /// A Warden store: a SQLite file or a postgres:// URL.
        #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle", value_parser = parse_store)]
        db: Option<Location>,
        /// An export bundle directory.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The trusted public key file (audit.pub).
        #[arg(long)]
        key: PathBuf,
        /// A checkpoint trusted from outside the log (a witness's copy, an
        /// earlier report): the log must extend it. Repeatable.
        #[arg(long = "trusted-checkpoint", value_name = "FILE")]
        trusted_checkpoints: Vec<PathBuf>,
        /// A directory witness: every *.checkpoint file in it is trusted.
        /// Repeatable.
        #[arg(long = "witness", value_name = "DIR")]
        witnesses: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export records for auditors (bundle) or for SIEMs and sampling.
    Export {
        /// A Warden store: a SQLite file or a postgres:// URL.
        #[arg(long, value_parser = parse_store)]
        db: Location,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum)]
        format: export::Format,
        /// From this time (RFC 3339 or YYYY-MM-DD, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Until this time (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only this principal (object id).
        #[arg(long)]
        principal: Option<String>,
        /// Only calls with this decision (allow or deny).
        #[arg(long)]
        decision: Option<String>,
        /// Only calls to this tool.
        #[arg(long)]
        tool: Option<String>,
    },
    /// Print records as they are appended (JSON Lines), until interrupted.
    Tail {
        /// A Warden store: a SQLite file or a postgres:// URL.
        #[arg(long, value_parser = parse_store)]
        db: Location,
        /// Start at this sequence number (default: only new records).
        #[arg(long)]
        from_seq: Option<u64>,
    },
}

/// `--db`: a `postgres://` URL or a SQLite file's path.
fn parse_store(text: &str) -> Result<Location, String> {
    if text.is_empty() {
        return Err("name a SQLite file or a postgres:// URL".into());
    }
    Ok(Location::parse(text))
}

/// Exit status of `warden audit verify` when the log does not verify.
const VERIFY_FAILED: u8 = 1;
/// Exit status of `warden audit verify` when it cannot read its inputs.
const VERIFY_UNREADABLE: u8 = 2;

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Keygen {
            origin,
            dir,
            no_hmac,
        } => {
            let files = warden::audit::KeyFiles::in_dir(&dir);
            let key = warden::audit::keygen(&origin, &files, !no_hmac)?;
            outln!("{}", key.encode())?;
            errln!(
                "wrote {} (secret), {}{}",
                files.signing_key.display(),
                files.public_key.display(),
                if no_hmac {
                    String::new()
                } else {
                    format!(" and {} (secret)", files.hmac_key.display())
                }
            );
            Ok(())
        }
        AuditCommand::Verify {
            db,
            bundle,
            key,
            trusted_checkpoints,
            witnesses,
            json,
        } => {
            let report = warden::audit::load_verifier(&key)
                .map_err(anyhow::Error::from)
                .and_then(|key| {
                    let trusted = export::trusted_checkpoints(&trusted_checkpoints, &witnesses)?;
                    match (&db, &bundle) {
                        (Some(db), _) => Ok(export::verify_store(db, key, trusted)?),
                        (None, Some(dir)) => Ok(export::verify_bundle(dir, key, trusted)?),
                        (None, None) => anyhow::bail!("give --db FILE or --bundle DIR"),
                    }
                });
            let report = match report {
                Ok(report) => report,
                Err(error) => {
                    errln!("warden: cannot verify: {error:#}");
                    std::process::exit(VERIFY_UNREADABLE.into());
                }
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                out!("{}", report.text())?;
            }
            if !report.ok {
                std::process::exit(VERIFY_FAILED.into());
            }
            Ok(())
        }
        AuditCommand::Export {
            db,
            out,
            format,
            from,
            to,
            principal,
            decision,
            tool,
        } => {
            let time = |t: Option<String>, flag: &str| {
                t.map(|t| export::parse_time(&t).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                    .transpose()
            };
            let filter = export::Filter {
                from: time(from, "from")?,
                to: time(to, "to")?,
                principal,
                decision,
                tool,
            };
            let done = export::export(&db, &out, format, filter)?;
            for file in &done.files {
                outln!("{}", file.display())?;
            }
            errln!("exported {} records", done.records);
            if done.left_out > 0 {
                errln!(
                    "left out {} matching records that came after the newest checkpoint \
                     (a subset bundle proves records against a signed checkpoint; export \
                     again after the next one)",
                    done.left_out
                );
            }
            Ok(())
        }
        AuditCommand::Tail { db, from_seq } => tail(&db, from_seq),
    }
}

/// Follows the store read-only, printing new records as JSON Lines, until
/// interrupted or until its reader closes stdout (noticed at the next
/// record, as `tail -f` does).
fn tail(db: &Location, from_seq: Option<u64>) -> anyhow::Result<()> {
    let reader = warden::store::Reader::open(db)?;
    let mut next = match from_seq {
        Some(seq) => seq as i64,
        None => reader.max_seq()?.map_or(0, |m| m + 1),
    };
    loop {
        reader.for_each_record(next, |row| {
            if output::stdout_closed() {
                return Ok(());
            }
            next = row.seq + 1;
            let mut line = row.bytes;
            line.push(b'\n');
            output::write_stdout_bytes(&line)
                .map_err(|e| warden::store::StoreError::Read(e.to_string()))
        })?;
        if output::stdout_closed() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
