//! `warden risk replay`: recorded calls fed through the real scoring and
//! response code, in time order, with the clock taken from the events
//! (docs/REPLAY.md).
//!
//! Three inputs ([`Format`]): Warden's own audit export ([`warden`]), Azure
//! Activity Log exports ([`activity_log`]) and the replay's own small JSON
//! Lines format ([`jsonl`]). Each becomes a list of [`Event`]s: calls (who, from
//! where, which operations, how they ended, whether a privilege grant ran
//! without an approval) and authentication attempts (an address, accepted
//! or refused, how many).
//!
//! The [`Engine`] takes them one at a time, as the live pipeline takes
//! calls: [`Risk::assess`], the privilege-grant floor
//! ([`crate::risk::Assessment::unapproved_privilege_grant`]),
//! [`Risk::alert_due`], [`plan::for_call`], [`Risk::learn`]; attempts go to
//! [`plan::AuthWatch`] (and refusals to [`Risk::auth_refused`]). What an
//! enforced response would have stopped is simulated: a suspended
//! principal's later calls, and a blocked network's events within the
//! cool-down, are stopped (not scored); nobody lifts a suspension in a
//! replay. [`report`] gathers what happened, per principal and hour.

pub mod activity_log;
pub mod jsonl;
pub mod report;
pub mod warden;

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use super::baseline::RiskClass;
use super::{Assessment, Observation, ObservedOp, Outcome, Risk, RiskConfig};
use crate::catalog::{Catalog, Class};
use crate::response::config::{Action, BlockConfig, Mode, ResponseConfig, Rule};
use crate::response::plan::{self, AuthWatch, FailingNetwork, Planned};

pub use report::Report;

/// The format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Told from the first record.
    Auto,
    /// `warden audit export --format jsonl` (or a bundle directory).
    Warden,
    /// `az monitor activity-log list`, or a diagnostic-settings export.
    ActivityLog,
    /// The replay's own JSON Lines (docs/REPLAY.md).
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Warden => "warden",
            Format::ActivityLog => "activity-log",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Where an event came from: an input and a line (JSON Lines) or an
/// index (a JSON array).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The input's position among the inputs.
    pub input: usize,
    pub place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// 1-based line.
    Line(u64),
    /// 0-based position in an array.
    Index(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, ":{n}"),
            Place::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unix milliseconds: the order of the replay.
    pub at_ms: i64,
    pub origin: Origin,
    pub what: What,
}

impl Event {
    /// Unix seconds: the clock scoring sees.
    pub fn at(&self) -> i64 {
        self.at_ms.div_euclid(1000)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Call(Call),
    Auth(Auth),
}

/// A call: a principal performing operations.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub tenant: String,
    /// Object id.
    pub principal: String,
    /// For people; the object id when nothing better is known.
    pub name: String,
    /// `user` or `application` (the peer group's kind).
    pub kind: String,
    /// App roles (the peer group's roles).
    pub roles: Vec<String>,
    pub source_ip: Option<IpAddr>,
    pub operations: Vec<CallOp>,
    /// Estimated monthly cost of what the call creates.
    pub cost: Option<f64>,
    /// How it ended.
    pub outcome: Outcome,
    /// A privilege grant that ran (or would have run) without an approval:
    /// scored critical, as the pipeline does.
    pub unapproved_grant: bool,
}

impl Call {
    /// `tid/oid`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.tenant, self.principal)
    }
}

/// One operation of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOp {
    pub azure_op: String,
    pub class: RiskClass,
    /// The ARM id, as recorded.
    pub resource: Option<String>,
    /// Lower-cased.
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
}

impl CallOp {
    /// An operation on `resource` (an ARM id, or none), classed `class`.
    pub fn new(azure_op: &str, class: RiskClass, resource: Option<&str>) -> CallOp {
        let id = resource.and_then(|r| crate::azure::ArmId::parse_scope(r).ok());
        CallOp {
            azure_op: azure_op.to_owned(),
            class,
            resource: resource.map(str::to_owned),
            subscription: id
                .as_ref()
                .and_then(|id| id.subscription().map(str::to_owned)),
            resource_group: id
                .as_ref()
                .and_then(|id| id.resource_group().map(str::to_owned)),
        }
    }
}

/// Authentication attempts from one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub source_ip: IpAddr,
    /// Accepted (a sign-in, a session start) or refused.
    pub ok: bool,
    /// How many attempts (aggregated refusals), at least 1.
    pub count: u32,
}

/// The class risk scoring gives an operation, by its name: the catalog's
/// `[classes]` table (privileged operations), else its last segment.
/// Changes, actions and unknown operations are writes.
pub struct Classifier {
    catalog: Catalog,
}

impl Classifier {
    pub fn new() -> Result<Classifier, String> {
        Catalog::builtin()
            .map(|catalog| Classifier { catalog })
            .map_err(|e| format!("the built-in catalog: {e}"))
    }

    /// The catalog class of `azure_op`.
    pub fn class(&self, azure_op: &str) -> Class {
        self.catalog.classify(azure_op).unwrap_or(Class::Unknown)
    }

    /// The risk class of `azure_op`; `creates` for a write that creates
    /// something billable.
    pub fn risk_class(&self, azure_op: &str, creates: bool) -> RiskClass {
        risk_class(self.class(azure_op), creates)
    }
}

/// The risk stage's class of a catalog class (as the pipeline maps it).
pub fn risk_class(class: Class, creates: bool) -> RiskClass {
    match class {
        Class::Read => RiskClass::Read,
        Class::Delete => RiskClass::Delete,
        Class::Privileged => RiskClass::Privileged,
        Class::Write | Class::Action | Class::Unknown if creates => RiskClass::Create,
        Class::Write | Class::Action | Class::Unknown => RiskClass::Write,
    }
}

// ------------------------------------------------------------------ the engine

/// Why an event was not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its principal was suspended earlier in the stream.
    Suspended,
    /// Its network was blocked, and the cool-down had not passed.
    Blocked(IpNet),
}

/// A response that fired on an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub planned: Planned,
    /// For a block: the network and its attempts.
    pub network: Option<FailingNetwork>,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not scored: an enforced response stopped it.
    Stopped(Stop),
    /// A call, scored.
    Call {
        assessment: Assessment,
        /// An alert was due (once per principal per hour).
        alert: bool,
        fired: Vec<Fired>,
        /// A notify-mode suspension or block would have stopped it.
        would_stop: Option<Stop>,
    },
    /// Authentication attempts, counted.
    Auth {
        fired: Vec<Fired>,
        would_stop: Option<Stop>,
    },
}

/// The replay: one risk stage and the response rules, fed events in time
/// order.
pub struct Engine {
    risk: Risk,
    rules: Vec<Rule>,
    block: BlockConfig,
    watch: AuthWatch,
    /// Principal (`tid/oid`) → the mode it was suspended in.
    suspended: HashMap<String, Mode>,
    /// Network → (until, mode) of its block.
    blocked: HashMap<IpNet, (i64, Mode)>,
}

impl Engine {
    /// `response` disabled: no rules, nothing responds.
    pub fn new(risk: Risk, response: &ResponseConfig) -> Engine {
        let rules = if response.enabled {
            response.rules()
        } else {
            Vec::new()
        };
        Engine {
            risk,
            rules,
            block: response.block.clone(),
            watch: AuthWatch::new(response.block.clone()),
            suspended: HashMap::new(),
            blocked: HashMap::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Puts `response`'s rules in force from the next event (after a
    /// history replayed without them, say). What was suspended or blocked
    /// stays so.
    pub fn respond_with(&mut self, response: &ResponseConfig) {
        self.rules = if response.enabled {
            response.rules()
        } else {
            Vec::new()
        };
        self.block = response.block.clone();
        self.watch = AuthWatch::new(response.block.clone());
    }

    pub fn risk(&self) -> &Risk {
        &self.risk
    }

    /// The block (enforced or not) over `ip` at `at`, if one lasts.
    fn block_over(&self, ip: Option<IpAddr>, at: i64) -> Option<(IpNet, Mode)> {
        let network = plan::network_of(ip?, &self.block);
        self.blocked
            .get(&network)
            .filter(|(until, _)| at < *until)
            .map(|(_, mode)| (network, *mode))
    }

    /// Takes the next event (events must come in time order).
    pub fn step(&mut self, event: &Event) -> Step {
        let at = event.at();
        match &event.what {
            What::Call(call) => self.call(call, at),
            What::Auth(auth) => self.auth(auth, at),
        }
    }

    fn call(&mut self, call: &Call, at: i64) -> Step {
        let mut would_stop = None;
        match self.block_over(call.source_ip, at) {
            Some((network, Mode::Enforce)) => return Step::Stopped(Stop::Blocked(network)),
            Some((network, Mode::Notify)) => would_stop = Some(Stop::Blocked(network)),
            None => {}
        }
        let key = call.key();
        match self.suspended.get(&key) {
            Some(Mode::Enforce) => return Step::Stopped(Stop::Suspended),
            Some(Mode::Notify) => would_stop = would_stop.or(Some(Stop::Suspended)),
            None => {}
        }
        let obs = Observation {
            tenant: call.tenant.clone(),
            principal: call.principal.clone(),
            peer: super::peer_group(&call.kind, &call.roles),
            at,
            source_ip: call.source_ip,
            operations: call
                .operations
                .iter()
                .map(|op| ObservedOp {
                    azure_op: op.azure_op.clone(),
                    class: op.class,
                    subscription: op.subscription.clone(),
                    resource_group: op.resource_group.clone(),
                })
                .collect(),
            cost: call.cost,
        };
        let mut assessment = self.risk.assess(&obs);
        if call.unapproved_grant
            && let Some(op) = call
                .operations
                .iter()
                .find(|op| super::features::is_privilege_grant(&op.azure_op))
        {
            assessment.unapproved_privilege_grant(&op.azure_op, self.risk.config().critical);
        }
        let alert = self.risk.alert_due(&obs, &assessment);
        // As the live pipeline does: every call the rules answer, whatever
        // became of it, gets its responses (a notify-mode rule says what it
        // would have done each time).
        let mut fired = Vec::new();
        for planned in plan::for_call(&self.rules, &assessment) {
            let fires = match planned.action {
                Action::Suspend => {
                    if planned.mode == Mode::Enforce || !self.suspended.contains_key(&key) {
                        self.suspended.insert(key.clone(), planned.mode);
                    }
                    true
                }
                // Only a grant that ran can be undone.
                Action::Revoke => {
                    call.outcome == Outcome::Succeeded
                        && call
                            .operations
                            .iter()
                            .any(|op| super::features::is_privilege_grant(&op.azure_op))
                }
                Action::Incident => true,
                // Blocks answer failing authentication only.
                Action::Block => false,
            };
            if fires {
                fired.push(Fired {
                    planned,
                    network: None,
                });
            }
        }
        self.risk.learn(&obs, call.outcome);
        Step::Call {
            assessment,
            alert,
            fired,
            would_stop,
        }
    }

    fn auth(&mut self, auth: &Auth, at: i64) -> Step {
        let ip = Some(auth.source_ip);
        let would_stop = match self.block_over(ip, at) {
            Some((network, Mode::Enforce)) => return Step::Stopped(Stop::Blocked(network)),
            Some((network, Mode::Notify)) => Some(Stop::Blocked(network)),
            None => None,
        };
        // More attempts than the watch keeps per network change nothing.
        let count = auth.count.clamp(1, 4096);
        let mut tipped = None;
        for _ in 0..count {
            if !auth.ok {
                self.risk.auth_refused(ip, at);
            }
            if let Some(network) = self.watch.note(auth.source_ip, auth.ok, at) {
                tipped = Some(network);
            }
        }
        let mut fired = Vec::new();
        if let Some(network) = tipped {
            let until = at + self.block.cool_down.as_secs() as i64;
            for planned in plan::for_auth_failures(&self.rules) {
                let fires = match planned.action {
                    Action::Block => {
                        let entry = self
                            .blocked
                            .entry(network.network)
                            .or_insert((until, planned.mode));
                        entry.0 = until;
                        if planned.mode == Mode::Enforce {
                            entry.1 = Mode::Enforce;
                        }
                        true
                    }
                    Action::Incident => true,
                    Action::Suspend | Action::Revoke => false,
                };
                if fires {
                    fired.push(Fired {
                        planned,
                        network: Some(network.clone()),
                    });
                }
            }
        }
        Step::Auth { fired, would_stop }
    }
}

// ------------------------------------------------------------------ inputs

/// Why an input could not be read: the file, the line or array index, the
/// field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub place: Option<Place>,
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(place) = self.place {
            write!(f, "{place}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// A field's problem, before the file and place are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> FieldError {
        FieldError {
            field: None,
            message: message.into(),
        }
    }

    pub fn at(self, file: &str, place: Option<Place>) -> InputError {
        InputError {
            file: file.to_owned(),
            place,
            field: self.field,
            message: self.message,
        }
    }
}

/// A JSON record deserialized into `T`, naming the field at fault.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, FieldError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return FieldError::whole(format!("malformed JSON: {inner}"));
        }
        FieldError {
            field: (path != "." && !path.is_empty()).then_some(path),
            message: inner.to_string(),
        }
    })
}

/// An RFC 3339 time as Unix milliseconds.
pub fn parse_time(field: &str, text: &str) -> Result<i64, FieldError> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| FieldError::new(field, format!("{text:?} is not an RFC 3339 time ({e})")))
}

/// An address (empty: none).
pub fn parse_ip(field: &str, text: &str) -> Result<Option<IpAddr>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| FieldError::new(field, format!("{text:?} is not an IP address")))
}

/// One input: a file, a bundle directory, or `-` (stdin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
}

impl Input {
    pub fn new(path: impl Into<PathBuf>) -> Input {
        Input { path: path.into() }
    }

    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// How errors name it.
    pub fn name(&self) -> String {
        if self.is_stdin() {
            "<stdin>".into()
        } else {
            self.path.display().to_string()
        }
    }
}

/// The bytes of an input, readable more than once.
pub(crate) enum Bytes {
    File(PathBuf),
    Memory(Vec<u8>),
}

impl Bytes {
    pub(crate) fn reader(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        Ok(match self {
            Bytes::File(path) => Box::new(std::io::BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(path)?,
            )),
            Bytes::Memory(bytes) => Box::new(std::io::Cursor::new(bytes.as_slice())),
        })
    }
}

/// Each non-empty line of `bytes` with its 1-based number.
pub(crate) fn for_each_line(
    file: &str,
    bytes: &Bytes,
    mut each: impl FnMut(u64, &str) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let io = |e: std::io::Error| FieldError::whole(e.to_string()).at(file, None);
    let mut reader = bytes.reader().map_err(io)?;
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(FieldError::whole("not UTF-8 text").at(file, Some(Place::Line(number))));
            }
            Err(e) => return Err(io(e)),
        }
        let text = line.trim().trim_start_matches('\u{feff}');
        if !text.is_empty() {
            each(number, text)?;
        }
    }
}

/// What an input held.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub format: Format,
    /// Records (lines, array elements) read.
    pub records: u64,
    /// Records that are not calls or attempts the replay uses (other
    /// kinds, categories, rate-limited calls, ...).
    pub skipped: u64,
    pub events: Vec<Event>,
}

/// Reads one input whole (events in input order). `index` is its
/// position among the inputs.
pub fn load(
    input: &Input,
    index: usize,
    format: Format,
    classifier: &Classifier,
) -> Result<Loaded, InputError> {
    let name = input.name();
    let whole = |message: String| FieldError::whole(message).at(&name, None);
    let (bytes, dir) = if input.is_stdin() {
        let mut buffer = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buffer)
            .map_err(|e| whole(format!("cannot read: {e}")))?;
        (Bytes::Memory(buffer), false)
    } else {
        let meta =
            std::fs::metadata(&input.path).map_err(|e| whole(format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let records = input.path.join("records.jsonl");
            if !records.is_file() {
                return Err(whole(
                    "a directory must be a Warden export bundle (records.jsonl)".into(),
                ));
            }
            (Bytes::File(records), true)
        } else {
            (Bytes::File(input.path.clone()), false)
        }
    };
    let file = if dir {
        input.path.join("records.jsonl").display().to_string()
    } else {
        name.clone()
    };
    let format = match format {
        Format::Auto if dir => Format::Warden,
        Format::Auto => detect(&file, &bytes)?,
        Format::ActivityLog | Format::Jsonl if dir => {
            return Err(whole(format!(
                "a bundle directory holds Warden records, not --format {}",
                format.as_str()
            )));
        }
        other => other,
    };
    let mut loaded = match format {
        Format::Warden => warden::load(&file, &bytes, index)?,
        Format::ActivityLog => activity_log::load(&file, &bytes, index, classifier)?,
        Format::Jsonl => jsonl::load(&file, &bytes, index, classifier)?,
        Format::Auto => unreachable!("detected above"),
    };
    loaded.format = format;
    Ok(loaded)
}

/// The first non-empty line of `bytes` and its number.
fn first_line(file: &str, bytes: &Bytes) -> Result<Option<(u64, String)>, InputError> {
    let io = |e: std::io::Error| FieldError::whole(e.to_string()).at(file, None);
    let mut reader = bytes.reader().map_err(io)?;
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Ok(None);
        }
        let text = line.trim().trim_start_matches('\u{feff}');
        if !text.is_empty() {
            return Ok(Some((number, text.to_owned())));
        }
    }
}

/// Tells the format from the first record.
fn detect(file: &str, bytes: &Bytes) -> Result<Format, InputError> {
    let Some((number, text)) = first_line(file, bytes)? else {
        // Empty: nothing to replay, in any format.
        return Ok(Format::Jsonl);
    };
    let place = Some(Place::Line(number));
    if text.starts_with('[') {
        return Ok(Format::ActivityLog);
    }
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        // A document over several lines: `{"records": [...]}` pretty-printed.
        Err(_) if text.starts_with('{') => return Ok(Format::ActivityLog),
        Err(e) => {
            return Err(FieldError::whole(format!("malformed JSON: {e}")).at(file, place));
        }
    };
    let Some(object) = value.as_object() else {
        return Err(FieldError::whole("expected a JSON object or array").at(file, place));
    };
    let has = |key: &str| object.keys().any(|k| k.eq_ignore_ascii_case(key));
    if has("records") {
        return Ok(Format::ActivityLog);
    }
    if has("seq") && has("kind") && has("ts") {
        return Ok(Format::Warden);
    }
    if has("time")
        && object
            .get("kind")
            .and_then(|k| k.as_str())
            .is_some_and(|k| matches!(k, "user" | "app" | "auth"))
    {
        return Ok(Format::Jsonl);
    }
    if [
        "operationName",
        "OperationNameValue",
        "eventTimestamp",
        "resultType",
    ]
    .iter()
    .any(|k| has(k))
    {
        return Ok(Format::ActivityLog);
    }
    Err(FieldError::whole(
        "cannot tell the format from the first record: give --format warden, activity-log or jsonl",
    )
    .at(file, place))
}

// ------------------------------------------------------------------ the command

/// What a replay is configured with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub risk: RiskConfig,
    pub response: ResponseConfig,
    /// Overrides `risk.geo`.
    pub geo: Option<PathBuf>,
}

/// `[risk]` and `[response]` of a `warden.toml` (nothing else is read, so
/// a file of another deployment, or one with only those tables, will do).
/// A relative `risk.geo` is relative to the file.
pub fn load_config(path: &Path) -> Result<(RiskConfig, ResponseConfig), String> {
    #[derive(Deserialize)]
    struct Tables {
        #[serde(default)]
        risk: RiskConfig,
        #[serde(default)]
        response: ResponseConfig,
    }
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let tables: Tables = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        format!("{name}:{line}: {}", e.message())
    })?;
    tables.risk.validate().map_err(|e| format!("{name}: {e}"))?;
    tables
        .response
        .validate()
        .map_err(|e| format!("{name}: {e}"))?;
    let mut risk = tables.risk;
    if let Some(geo) = &mut risk.geo
        && geo.is_relative()
    {
        *geo = path.parent().unwrap_or(Path::new("")).join(&*geo);
    }
    Ok((risk, tables.response))
}

/// Reads every input (any error stops the replay before anything is
/// reported), merges their events in time order and replays them.
pub fn replay(inputs: &[Input], format: Format, options: &Options) -> Result<Report, String> {
    let mut config = options.risk.clone();
    if let Some(geo) = &options.geo {
        config.geo = Some(geo.clone());
    }
    let risk = Risk::new(config)?;
    let classifier = Classifier::new()?;
    let mut loaded = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        loaded.push(load(input, index, format, &classifier).map_err(|e| e.to_string())?);
    }
    let mut events: Vec<Event> = Vec::new();
    let mut sources = Vec::new();
    for (input, mut l) in inputs.iter().zip(loaded) {
        sources.push(report::SourceSummary {
            file: input.name(),
            format: l.format.as_str().to_owned(),
            records: l.records,
            events: l.events.len() as u64,
            skipped: l.skipped,
        });
        events.append(&mut l.events);
    }
    // Stable: events of the same millisecond keep their inputs' order.
    events.sort_by_key(|e| (e.at_ms, e.origin));
    let mut engine = Engine::new(risk, &options.response);
    let mut builder = report::Builder::new(sources, engine.rules().to_vec(), options);
    for event in &events {
        let step = engine.step(event);
        builder.add(event, &step);
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests;
