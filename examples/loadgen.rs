//! Load generator for MCP Streamable HTTP endpoints.
//!
//! ```text
//! loadgen --url http://127.0.0.1:8787/mcp --concurrency 64 --calls 20000 \
//!         [--tool echo] [--args '{"text":"hello"}'] [--header 'Name: value']... \
//!         [--warmup 10] [--timeout 30] [--json]
//! loadgen --url http://127.0.0.1:8787/mcp --concurrency 100 --hold [--open-parallel 4]
//! ```
//!
//! Each of the `--concurrency` clients is a real rmcp client with its own MCP
//! session. It initializes, makes `--warmup` unmeasured calls, then (once all
//! clients are ready) makes its share of `--calls` sequentially. Latency of
//! every measured call goes into an HDR histogram; failed calls, JSON-RPC
//! errors and results with `isError` count as errors. Exit status: 0 when no
//! call failed, 1 otherwise (the summary is printed either way).
//!
//! With `--hold` it makes no calls: it opens the sessions (at most
//! `--open-parallel` at a time), lists each one's tools (every page), prints
//! one JSON line (`{"sessions":…,"failed":…,"tools":…}`), keeps the
//! sessions open until its stdin closes, then closes them: for measuring
//! what open sessions cost.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, JsonObject};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::sync::Barrier;

/// Latencies above this (an hour, in µs) are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Parser, Clone)]
#[command(about = "MCP load generator: N sessions calling one tool")]
struct Cli {
    /// MCP Streamable HTTP endpoint.
    #[arg(long)]
    url: String,
    /// Number of clients, each with its own MCP session.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Total measured tool calls, divided across the clients.
    #[arg(long, default_value_t = 1000)]
    calls: u64,
    /// Tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Tool arguments as a JSON object.
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    args: String,
    /// Extra HTTP header `Name: value`; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Unmeasured calls per client before measuring.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Per-call time limit in seconds; a call over it counts as an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Open the sessions, list their tools and hold them open until stdin
    /// closes; no calls.
    #[arg(long)]
    hold: bool,
    /// With `--hold`: how many sessions are being opened at once.
    #[arg(long, default_value_t = 4)]
    open_parallel: usize,
}

/// What one client measured.
struct Outcome {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// When the client's last measured call ended.
    finished: Instant,
}

impl Outcome {
    fn new(latencies: Histogram<u64>) -> Outcome {
        Outcome {
            latencies,
            errors: 0,
            first_error: None,
            finished: Instant::now(),
        }
    }

    fn error(&mut self, count: u64, message: String) {
        self.errors += count;
        self.first_error.get_or_insert(message);
    }
}

/// Everything a client needs, shared by all of them.
struct Plan {
    config: StreamableHttpClientTransportConfig,
    call: CallToolRequestParams,
    warmup: u64,
    timeout: Duration,
    /// Every client and `main` meet here before measuring starts.
    start: Barrier,
    /// An empty histogram with the bounds every client uses.
    histogram: Histogram<u64>,
}

fn parse_header(raw: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, value) = raw
        .split_once(':')
        .with_context(|| format!("header {raw:?} is not `Name: value`"))?;
    let name =
        HeaderName::try_from(name.trim()).with_context(|| format!("header name in {raw:?}"))?;
    let value =
        HeaderValue::try_from(value.trim()).with_context(|| format!("header value in {raw:?}"))?;
    Ok((name, value))
}

fn plan(cli: &Cli) -> anyhow::Result<Plan> {
    if cli.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let timeout = Duration::try_from_secs_f64(cli.timeout)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    let arguments: JsonObject =
        serde_json::from_str(&cli.args).context("--args is not a JSON object")?;
    let headers = cli
        .headers
        .iter()
        .map(|raw| parse_header(raw))
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let config =
        StreamableHttpClientTransportConfig::with_uri(cli.url.clone()).custom_headers(headers);
    Ok(Plan {
        config,
        call: CallToolRequestParams::new(cli.tool.clone()).with_arguments(arguments),
        warmup: cli.warmup,
        timeout,
        start: Barrier::new(cli.concurrency + 1),
        histogram: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
    })
}

type Session = rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>;

/// Opens one MCP session (initialize and initialized).
async fn open(plan: &Plan) -> anyhow::Result<Session> {
    // A pooled HTTP client keeps the session's connections alive between calls.
    let http = reqwest::Client::builder().build()?;
    let transport = StreamableHttpClientTransport::with_client(http, plan.config.clone());
    Ok(ClientConfig::default().serve(transport).await?)
}

/// One client: open a session, warm up, wait for the others, make `calls` calls.
async fn client(plan: Arc<Plan>, calls: u64) -> Outcome {
    let session = match tokio::time::timeout(plan.timeout, open(&plan)).await {
        Ok(opened) => opened,
        Err(_) => Err(anyhow::anyhow!("timed out after {:?}", plan.timeout)),
    };
    if let Ok(session) = &session {
        for _ in 0..plan.warmup {
            let call = session.call_tool(plan.call.clone());
            let _ = tokio::time::timeout(plan.timeout, call).await;
        }
    }
    plan.start.wait().await;
    let mut outcome = Outcome::new(plan.histogram.clone());
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            outcome.error(calls, format!("initialize: {error:#}"));
            return outcome;
        }
    };
    for _ in 0..calls {
        let began = Instant::now();
        let call = session.call_tool(plan.call.clone());
        let result = tokio::time::timeout(plan.timeout, call).await;
        let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        outcome.latencies.saturating_record(micros.max(1));
        match result {
            Ok(Ok(reply)) if reply.is_error != Some(true) => {}
            Ok(Ok(reply)) => outcome.error(1, format!("tool error: {:?}", reply.content)),
            Ok(Err(error)) => outcome.error(1, error.to_string()),
            Err(_) => outcome.error(1, format!("timed out after {:?}", plan.timeout)),
        }
    }
    outcome.finished = Instant::now();
    let _ = session.cancel().await;
    outcome
}

/// `--hold`: opens `count` sessions, `parallel` at a time, lists each
/// one's tools, reports, and holds them until stdin closes.
async fn hold(plan: Arc<Plan>, count: usize, parallel: usize) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    let opened: Vec<anyhow::Result<(Session, usize)>> = futures::stream::iter(0..count)
        .map(|_| {
            let plan = plan.clone();
            async move {
                let session = tokio::time::timeout(plan.timeout, open(&plan))
                    .await
                    .map_err(|_| anyhow::anyhow!("initialize timed out"))??;
                let tools = tokio::time::timeout(plan.timeout, session.list_all_tools())
                    .await
                    .map_err(|_| anyhow::anyhow!("tools/list timed out"))??;
                Ok((session, tools.len()))
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut sessions = Vec::new();
    let mut first_error = None;
    let mut tools = 0;
    for result in opened {
        match result {
            Ok((session, listed)) => {
                tools = tools.max(listed);
                sessions.push(session);
            }
            Err(error) => {
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    let failed = count - sessions.len();
    println!(
        "{}",
        serde_json::json!({
            "sessions": sessions.len(),
            "failed": failed,
            "tools": tools,
            "first_error": first_error,
        })
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink()).await?;
    for session in sessions {
        let _ = session.cancel().await;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let plan = Arc::new(plan(&cli)?);
    if cli.hold {
        return hold(plan, cli.concurrency, cli.open_parallel).await;
    }
    let clients = cli.concurrency as u64;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let share = cli.calls / clients + u64::from(i < cli.calls % clients);
            tokio::spawn(client(plan.clone(), share))
        })
        .collect();
    plan.start.wait().await;
    let started = Instant::now();
    let mut total = Outcome::new(plan.histogram.clone());
    total.finished = started;
    for task in tasks {
        let outcome = task.await.context("client task")?;
        total.latencies.add(&outcome.latencies)?;
        total.errors += outcome.errors;
        total.finished = total.finished.max(outcome.finished);
        if let Some(message) = outcome.first_error {
            total.first_error.get_or_insert(message);
        }
    }
    let wall = total.finished.duration_since(started).as_secs_f64();
    report(&cli, &total, wall);
    Ok(if total.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(cli: &Cli, total: &Outcome, wall_secs: f64) {
    let h = &total.latencies;
    let throughput = if wall_secs > 0.0 {
        h.len() as f64 / wall_secs
    } else {
        0.0
    };
    if cli.json {
        let summary = serde_json::json!({
            "url": cli.url,
            "tool": cli.tool,
            "concurrency": cli.concurrency,
            "calls": cli.calls,
            "errors": total.errors,
            "wall_ms": wall_secs * 1000.0,
            "throughput_per_s": throughput,
            "latency_us": {
                "p50": h.value_at_quantile(0.50),
                "p90": h.value_at_quantile(0.90),
                "p99": h.value_at_quantile(0.99),
                "max": h.max(),
                "mean": h.mean(),
            },
            "first_error": total.first_error,
        });
        println!("{summary}");
    } else {
        println!("calls        {}", cli.calls);
        println!("errors       {}", total.errors);
        println!("concurrency  {}", cli.concurrency);
        println!("wall_ms      {:.1}", wall_secs * 1000.0);
        println!("throughput   {throughput:.1} calls/s");
        println!(
            "latency_us   p50={} p90={} p99={} max={}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.max()
        );
        if let Some(message) = &total.first_error {
            println!("first_error  {message}");
        }
    }
}
