//! The simulator's own SQLite file: the state of the simulated Azure estate
//! (subscriptions, resource groups, resources, role assignments, diagnostic
//! settings, Key Vault secrets, pending async operations, the activity log
//! and a log of the requests served).
//! It is not Warden's store. Every request runs in one transaction on one
//! mutex-guarded connection, from a blocking task.
//!
//! Ids are stored twice: in canonical casing (`id`, `name`, as returned to
//! clients) and lower-cased (`*_lc`, for lookups), because ARM matches ids
//! case-insensitively.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::{Map, Value};

use super::SimError;
use super::seed;

/// `PRAGMA user_version` of the schema below (`SCHEMA`, then `SCHEMA_2`).
pub(crate) const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,            -- lower-case GUID
    display_name TEXT NOT NULL,
    state        TEXT NOT NULL,
    tags         TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE resource_groups (
    subscription TEXT NOT NULL,
    name_lc      TEXT NOT NULL,
    name         TEXT NOT NULL,
    location     TEXT NOT NULL,
    tags         TEXT NOT NULL DEFAULT '{}',
    managed_by   TEXT,
    state        TEXT NOT NULL,               -- Succeeded | Deleting
    created      TEXT NOT NULL,
    PRIMARY KEY (subscription, name_lc)
);
CREATE TABLE resources (
    id_lc              TEXT PRIMARY KEY,
    id                 TEXT NOT NULL,
    subscription       TEXT NOT NULL,
    rg_lc              TEXT NOT NULL,
    rg_name            TEXT NOT NULL,
    parent_lc          TEXT,                  -- parent resource of a child resource
    type               TEXT NOT NULL,         -- canonical, e.g. Microsoft.Compute/virtualMachines
    name               TEXT NOT NULL,
    location           TEXT,
    tags               TEXT NOT NULL DEFAULT '{}',
    kind               TEXT,
    sku                TEXT,
    properties         TEXT NOT NULL DEFAULT '{}',
    provisioning_state TEXT NOT NULL,
    power_state        TEXT,                  -- virtual machines: running | stopped | deallocated
    created            TEXT NOT NULL,
    changed            TEXT NOT NULL
);
CREATE INDEX resources_by_group ON resources (subscription, rg_lc);
CREATE INDEX resources_by_parent ON resources (parent_lc);
CREATE TABLE role_assignments (
    name_lc         TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    scope           TEXT NOT NULL,
    scope_lc        TEXT NOT NULL,
    role_definition TEXT NOT NULL,            -- lower-case role definition GUID
    principal_id    TEXT NOT NULL,            -- lower-case GUID
    principal_type  TEXT NOT NULL,
    description     TEXT,
    created_on      TEXT NOT NULL,
    updated_on      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_by      TEXT NOT NULL
);
CREATE TABLE operations (
    id             TEXT PRIMARY KEY,
    subscription   TEXT NOT NULL,
    location       TEXT NOT NULL,
    target_lc      TEXT NOT NULL,             -- resource (group) id the operation acts on
    polls_left     INTEGER NOT NULL,
    status         TEXT NOT NULL,             -- InProgress | Succeeded | Failed
    action         TEXT NOT NULL,             -- JSON: what completion does
    event          TEXT NOT NULL,             -- JSON: activity-log context of the request
    error          TEXT,                      -- JSON ARM error of a failed operation
    start_time     TEXT NOT NULL,
    end_time       TEXT
);
CREATE INDEX operations_by_target ON operations (target_lc, status);
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription   TEXT NOT NULL,
    doc            TEXT NOT NULL
);
CREATE INDEX events_by_subscription ON events (subscription, seq);
CREATE TABLE requests (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    time           TEXT NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    api_version    TEXT NOT NULL,
    status         INTEGER NOT NULL,
    caller         TEXT NOT NULL,
    correlation_id TEXT NOT NULL
);
";

/// Version 2 over version 1: a resource's `managedBy` (disks attached to a
/// VM), diagnostic settings and Key Vault secrets. A version-1 file is
/// upgraded in place and given version 2's seeded objects.
const SCHEMA_2: &str = "
ALTER TABLE resources ADD COLUMN managed_by TEXT;
CREATE TABLE diagnostic_settings (
    scope_lc       TEXT NOT NULL,             -- the resource (or subscription) id, lower-cased
    name_lc        TEXT NOT NULL,
    scope          TEXT NOT NULL,
    name           TEXT NOT NULL,
    properties     TEXT NOT NULL,
    PRIMARY KEY (scope_lc, name_lc)
);
CREATE TABLE secrets (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT, -- version order
    vault_lc       TEXT NOT NULL,             -- the key vault's ARM id, lower-cased
    name_lc        TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,             -- 32 lower-case hex digits
    value          TEXT NOT NULL,
    content_type   TEXT,
    tags           TEXT NOT NULL DEFAULT '{}',
    enabled        INTEGER NOT NULL,
    not_before     INTEGER,                   -- Unix seconds, as Key Vault's attributes
    expires        INTEGER,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    deleted        INTEGER                    -- when the secret was (soft) deleted, else NULL
);
CREATE UNIQUE INDEX secrets_by_version ON secrets (vault_lc, name_lc, version);
";

/// Opens (creating and seeding if new) the simulator's database; `tenant`
/// is written where seeded resources name their tenant.
pub(crate) fn open(path: &Path, tenant: &str) -> Result<Connection, SimError> {
    let db_error = |source| SimError::Db {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| SimError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(db_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(db_error)?;
    let _mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(db_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_error)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(db_error)?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA).map_err(db_error)?;
            tx.execute_batch(SCHEMA_2).map_err(db_error)?;
            seed::seed(&tx, chrono::Utc::now(), tenant).map_err(db_error)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
        }
        1 => {
            tx.execute_batch(SCHEMA_2).map_err(db_error)?;
            seed::seed_v2(&tx, chrono::Utc::now()).map_err(db_error)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
        }
        SCHEMA_VERSION => tx.commit().map_err(db_error)?,
        other => {
            return Err(SimError::Schema {
                path: path.to_owned(),
                version: other,
            });
        }
    }
    Ok(conn)
}

// ---------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub display_name: String,
    pub state: String,
    pub tags: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct ResourceGroup {
    pub subscription: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub managed_by: Option<String>,
    pub state: String,
    pub created: String,
}

impl ResourceGroup {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.subscription, self.name
        )
    }

    pub fn deleting(&self) -> bool {
        self.state == "Deleting"
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub id: String,
    pub subscription: String,
    pub rg_name: String,
    pub parent_lc: Option<String>,
    pub r#type: String,
    pub name: String,
    pub location: Option<String>,
    pub tags: Map<String, Value>,
    pub kind: Option<String>,
    pub sku: Option<Value>,
    pub properties: Value,
    pub provisioning_state: String,
    pub power_state: Option<String>,
    pub created: String,
    pub changed: String,
    /// `managedBy`: the VM a disk is attached to.
    pub managed_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleAssignment {
    pub name: String,
    pub scope: String,
    pub role_definition: String,
    pub principal_id: String,
    pub principal_type: String,
    pub description: Option<String>,
    pub created_on: String,
    pub updated_on: String,
    pub created_by: String,
    pub updated_by: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub id: String,
    pub subscription: String,
    pub location: String,
    pub target_lc: String,
    pub polls_left: u32,
    pub status: String,
    pub action: Value,
    pub event: Value,
    pub error: Option<Value>,
    pub start_time: String,
    pub end_time: Option<String>,
}

fn json_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn opt_json_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
    })
    .transpose()
}

fn map_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Map<String, Value>> {
    match json_col(row, index)? {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

fn text(value: &Value) -> String {
    value.to_string()
}

fn map_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// SQL true when column `col` is the id `?N` or below it (`?N` + `/`).
fn at_or_below(col: &str, n: usize) -> String {
    format!("({col} = ?{n} OR substr({col}, 1, length(?{n}) + 1) = ?{n} || '/')")
}

// ---------------------------------------------------------------------------
// Subscriptions

fn subscription_row(row: &Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        id: row.get(0)?,
        display_name: row.get(1)?,
        state: row.get(2)?,
        tags: map_col(row, 3)?,
    })
}

pub(crate) fn list_subscriptions(c: &Connection) -> rusqlite::Result<Vec<Subscription>> {
    let mut stmt =
        c.prepare("SELECT id, display_name, state, tags FROM subscriptions ORDER BY display_name")?;
    stmt.query_map([], subscription_row)?.collect()
}

pub(crate) fn get_subscription(c: &Connection, id: &str) -> rusqlite::Result<Option<Subscription>> {
    c.query_row(
        "SELECT id, display_name, state, tags FROM subscriptions WHERE id = ?1",
        [id.to_ascii_lowercase()],
        subscription_row,
    )
    .optional()
}

pub(crate) fn put_subscription(c: &Connection, s: &Subscription) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO subscriptions (id, display_name, state, tags) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET display_name = ?2, state = ?3, tags = ?4",
        params![
            s.id.to_ascii_lowercase(),
            s.display_name,
            s.state,
            map_text(&s.tags)
        ],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Resource groups

const RG_COLUMNS: &str = "subscription, name, location, tags, managed_by, state, created";

fn rg_row(row: &Row<'_>) -> rusqlite::Result<ResourceGroup> {
    Ok(ResourceGroup {
        subscription: row.get(0)?,
        name: row.get(1)?,
        location: row.get(2)?,
        tags: map_col(row, 3)?,
        managed_by: row.get(4)?,
        state: row.get(5)?,
        created: row.get(6)?,
    })
}

pub(crate) fn list_rgs(c: &Connection, subscription: &str) -> rusqlite::Result<Vec<ResourceGroup>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RG_COLUMNS} FROM resource_groups WHERE subscription = ?1 ORDER BY name_lc"
    ))?;
    stmt.query_map([subscription.to_ascii_lowercase()], rg_row)?
        .collect()
}

pub(crate) fn get_rg(
    c: &Connection,
    subscription: &str,
    name: &str,
) -> rusqlite::Result<Option<ResourceGroup>> {
    c.query_row(
        &format!(
            "SELECT {RG_COLUMNS} FROM resource_groups WHERE subscription = ?1 AND name_lc = ?2"
        ),
        [subscription.to_ascii_lowercase(), name.to_lowercase()],
        rg_row,
    )
    .optional()
}

pub(crate) fn put_rg(c: &Connection, rg: &ResourceGroup) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO resource_groups (subscription, name_lc, name, location, tags, managed_by, state, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (subscription, name_lc) DO UPDATE SET
             location = ?4, tags = ?5, managed_by = ?6, state = ?7",
        params![
            rg.subscription.to_ascii_lowercase(),
            rg.name.to_lowercase(),
            rg.name,
            rg.location,
            map_text(&rg.tags),
            rg.managed_by,
            rg.state,
            rg.created
        ],
    )?;
    Ok(())
}

/// Deletes a resource group, its resources and everything attached to them
/// (role assignments, diagnostic settings, secrets).
pub(crate) fn delete_rg(c: &Connection, subscription: &str, name: &str) -> rusqlite::Result<()> {
    let subscription = subscription.to_ascii_lowercase();
    let name_lc = name.to_lowercase();
    c.execute(
        "DELETE FROM resources WHERE subscription = ?1 AND rg_lc = ?2",
        params![subscription, name_lc],
    )?;
    let scope_lc = format!("/subscriptions/{subscription}/resourcegroups/{name_lc}");
    delete_attached(c, &scope_lc)?;
    c.execute(
        "DELETE FROM resource_groups WHERE subscription = ?1 AND name_lc = ?2",
        params![subscription, name_lc],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Resources

const RESOURCE_COLUMNS: &str = "id, subscription, rg_name, parent_lc, type, name, location, tags, \
     kind, sku, properties, provisioning_state, power_state, created, changed, managed_by";

fn resource_row(row: &Row<'_>) -> rusqlite::Result<Resource> {
    Ok(Resource {
        id: row.get(0)?,
        subscription: row.get(1)?,
        rg_name: row.get(2)?,
        parent_lc: row.get(3)?,
        r#type: row.get(4)?,
        name: row.get(5)?,
        location: row.get(6)?,
        tags: map_col(row, 7)?,
        kind: row.get(8)?,
        sku: opt_json_col(row, 9)?,
        properties: json_col(row, 10)?,
        provisioning_state: row.get(11)?,
        power_state: row.get(12)?,
        created: row.get(13)?,
        changed: row.get(14)?,
        managed_by: row.get(15)?,
    })
}

pub(crate) fn get_resource(c: &Connection, id: &str) -> rusqlite::Result<Option<Resource>> {
    c.query_row(
        &format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE id_lc = ?1"),
        [id.to_lowercase()],
        resource_row,
    )
    .optional()
}

/// Resources of a subscription, or of one of its resource groups, by id.
pub(crate) fn list_resources(
    c: &Connection,
    subscription: &str,
    rg: Option<&str>,
) -> rusqlite::Result<Vec<Resource>> {
    let subscription = subscription.to_ascii_lowercase();
    match rg {
        Some(rg) => {
            let mut stmt = c.prepare(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM resources WHERE subscription = ?1 AND rg_lc = ?2 ORDER BY id_lc"
            ))?;
            stmt.query_map(params![subscription, rg.to_lowercase()], resource_row)?
                .collect()
        }
        None => {
            let mut stmt = c.prepare(&format!(
                "SELECT {RESOURCE_COLUMNS} FROM resources WHERE subscription = ?1 ORDER BY id_lc"
            ))?;
            stmt.query_map([subscription], resource_row)?.collect()
        }
    }
}

pub(crate) fn put_resource(c: &Connection, r: &Resource) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO resources (id_lc, id, subscription, rg_lc, rg_name, parent_lc, type, name, location,
                                tags, kind, sku, properties, provisioning_state, power_state, created, changed,
                                managed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (id_lc) DO UPDATE SET
             location = ?9, tags = ?10, kind = ?11, sku = ?12, properties = ?13,
             provisioning_state = ?14, power_state = ?15, changed = ?17, managed_by = ?18",
        params![
            r.id.to_lowercase(),
            r.id,
            r.subscription.to_ascii_lowercase(),
            r.rg_name.to_lowercase(),
            r.rg_name,
            r.parent_lc,
            r.r#type,
            r.name,
            r.location,
            map_text(&r.tags),
            r.kind,
            r.sku.as_ref().map(text),
            text(&r.properties),
            r.provisioning_state,
            r.power_state,
            r.created,
            r.changed,
            r.managed_by
        ],
    )?;
    Ok(())
}

/// Deletes a resource, its child resources and everything attached to
/// them (role assignments, diagnostic settings, secrets).
pub(crate) fn delete_resource(c: &Connection, id: &str) -> rusqlite::Result<()> {
    let id_lc = id.to_lowercase();
    c.execute(
        &format!("DELETE FROM resources WHERE {}", at_or_below("id_lc", 1)),
        [&id_lc],
    )?;
    delete_attached(c, &id_lc)
}

/// Deletes the role assignments, diagnostic settings and secrets at or
/// below the lower-cased id `scope_lc`.
fn delete_attached(c: &Connection, scope_lc: &str) -> rusqlite::Result<()> {
    for (table, column) in [
        ("role_assignments", "scope_lc"),
        ("diagnostic_settings", "scope_lc"),
        ("secrets", "vault_lc"),
    ] {
        c.execute(
            &format!("DELETE FROM {table} WHERE {}", at_or_below(column, 1)),
            [scope_lc],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Role assignments

const RA_COLUMNS: &str = "name, scope, role_definition, principal_id, principal_type, description, \
     created_on, updated_on, created_by, updated_by";

fn ra_row(row: &Row<'_>) -> rusqlite::Result<RoleAssignment> {
    Ok(RoleAssignment {
        name: row.get(0)?,
        scope: row.get(1)?,
        role_definition: row.get(2)?,
        principal_id: row.get(3)?,
        principal_type: row.get(4)?,
        description: row.get(5)?,
        created_on: row.get(6)?,
        updated_on: row.get(7)?,
        created_by: row.get(8)?,
        updated_by: row.get(9)?,
    })
}

pub(crate) fn list_role_assignments(c: &Connection) -> rusqlite::Result<Vec<RoleAssignment>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RA_COLUMNS} FROM role_assignments ORDER BY scope_lc, name_lc"
    ))?;
    stmt.query_map([], ra_row)?.collect()
}

pub(crate) fn get_role_assignment(
    c: &Connection,
    name: &str,
) -> rusqlite::Result<Option<RoleAssignment>> {
    c.query_row(
        &format!("SELECT {RA_COLUMNS} FROM role_assignments WHERE name_lc = ?1"),
        [name.to_ascii_lowercase()],
        ra_row,
    )
    .optional()
}

pub(crate) fn put_role_assignment(c: &Connection, ra: &RoleAssignment) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO role_assignments (name_lc, name, scope, scope_lc, role_definition, principal_id,
                                       principal_type, description, created_on, updated_on, created_by, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (name_lc) DO UPDATE SET
             principal_type = ?7, description = ?8, updated_on = ?10, updated_by = ?12",
        params![
            ra.name.to_ascii_lowercase(),
            ra.name,
            ra.scope,
            ra.scope.to_lowercase(),
            ra.role_definition,
            ra.principal_id,
            ra.principal_type,
            ra.description,
            ra.created_on,
            ra.updated_on,
            ra.created_by,
            ra.updated_by
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_role_assignment(c: &Connection, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM role_assignments WHERE name_lc = ?1",
        [name.to_ascii_lowercase()],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Diagnostic settings

/// A diagnostic setting of a resource (or subscription).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiagnosticSetting {
    pub scope: String,
    pub name: String,
    pub properties: Value,
}

fn diagnostic_row(row: &Row<'_>) -> rusqlite::Result<DiagnosticSetting> {
    Ok(DiagnosticSetting {
        scope: row.get(0)?,
        name: row.get(1)?,
        properties: json_col(row, 2)?,
    })
}

pub(crate) fn list_diagnostic_settings(
    c: &Connection,
    scope: &str,
) -> rusqlite::Result<Vec<DiagnosticSetting>> {
    let mut stmt = c.prepare(
        "SELECT scope, name, properties FROM diagnostic_settings WHERE scope_lc = ?1 ORDER BY name_lc",
    )?;
    stmt.query_map([scope.to_lowercase()], diagnostic_row)?
        .collect()
}

pub(crate) fn get_diagnostic_setting(
    c: &Connection,
    scope: &str,
    name: &str,
) -> rusqlite::Result<Option<DiagnosticSetting>> {
    c.query_row(
        "SELECT scope, name, properties FROM diagnostic_settings WHERE scope_lc = ?1 AND name_lc = ?2",
        [scope.to_lowercase(), name.to_lowercase()],
        diagnostic_row,
    )
    .optional()
}

pub(crate) fn put_diagnostic_setting(
    c: &Connection,
    d: &DiagnosticSetting,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO diagnostic_settings (scope_lc, name_lc, scope, name, properties)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope_lc, name_lc) DO UPDATE SET properties = ?5",
        params![
            d.scope.to_lowercase(),
            d.name.to_lowercase(),
            d.scope,
            d.name,
            text(&d.properties)
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_diagnostic_setting(
    c: &Connection,
    scope: &str,
    name: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM diagnostic_settings WHERE scope_lc = ?1 AND name_lc = ?2",
        [scope.to_lowercase(), name.to_lowercase()],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Key Vault secrets

/// One version of a secret.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Secret {
    /// The key vault's ARM id, lower-cased.
    pub vault_lc: String,
    pub name: String,
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub tags: Map<String, Value>,
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: i64,
    pub updated: i64,
    /// When the secret was deleted (it is then recoverable), Unix seconds.
    pub deleted: Option<i64>,
}

const SECRET_COLUMNS: &str = "vault_lc, name, version, value, content_type, tags, enabled, \
     not_before, expires, created, updated, deleted";

fn secret_row(row: &Row<'_>) -> rusqlite::Result<Secret> {
    Ok(Secret {
        vault_lc: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        value: row.get(3)?,
        content_type: row.get(4)?,
        tags: map_col(row, 5)?,
        enabled: row.get(6)?,
        not_before: row.get(7)?,
        expires: row.get(8)?,
        created: row.get(9)?,
        updated: row.get(10)?,
        deleted: row.get(11)?,
    })
}

/// Every version of secret `name` (deleted or not), oldest first.
pub(crate) fn secret_versions(
    c: &Connection,
    vault_lc: &str,
    name: &str,
) -> rusqlite::Result<Vec<Secret>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE vault_lc = ?1 AND name_lc = ?2 ORDER BY seq"
    ))?;
    stmt.query_map(params![vault_lc, name.to_lowercase()], secret_row)?
        .collect()
}

/// The latest version of every secret of a vault that is deleted (or
/// not), by name.
pub(crate) fn latest_secrets(
    c: &Connection,
    vault_lc: &str,
    deleted: bool,
) -> rusqlite::Result<Vec<Secret>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s
         WHERE vault_lc = ?1 AND (deleted IS NOT NULL) = ?2
           AND seq = (SELECT MAX(seq) FROM secrets t WHERE t.vault_lc = s.vault_lc AND t.name_lc = s.name_lc)
         ORDER BY name_lc"
    ))?;
    stmt.query_map(params![vault_lc, deleted], secret_row)?
        .collect()
}

/// Adds a version.
pub(crate) fn insert_secret(c: &Connection, s: &Secret) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO secrets (vault_lc, name_lc, name, version, value, content_type, tags, enabled,
                              not_before, expires, created, updated, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            s.vault_lc,
            s.name.to_lowercase(),
            s.name,
            s.version,
            s.value,
            s.content_type,
            map_text(&s.tags),
            s.enabled,
            s.not_before,
            s.expires,
            s.created,
            s.updated,
            s.deleted
        ],
    )?;
    Ok(())
}

/// Marks every version of secret `name` deleted at `when` (or recovered,
/// with `None`).
pub(crate) fn set_secret_deleted(
    c: &Connection,
    vault_lc: &str,
    name: &str,
    when: Option<i64>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE secrets SET deleted = ?3 WHERE vault_lc = ?1 AND name_lc = ?2",
        params![vault_lc, name.to_lowercase(), when],
    )?;
    Ok(())
}

/// Removes every version of secret `name`.
pub(crate) fn purge_secret(c: &Connection, vault_lc: &str, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM secrets WHERE vault_lc = ?1 AND name_lc = ?2",
        params![vault_lc, name.to_lowercase()],
    )?;
    Ok(())
}

/// The key vault named `name` (vault names are unique across Azure).
pub(crate) fn find_vault(c: &Connection, name: &str) -> rusqlite::Result<Option<Resource>> {
    c.query_row(
        &format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources
             WHERE type = 'Microsoft.KeyVault/vaults' AND lower(name) = ?1 LIMIT 1"
        ),
        [name.to_lowercase()],
        resource_row,
    )
    .optional()
}

// ---------------------------------------------------------------------------
// Async operations

const OP_COLUMNS: &str = "id, subscription, location, target_lc, polls_left, status, action, event, error, start_time, end_time";

fn op_row(row: &Row<'_>) -> rusqlite::Result<Operation> {
    Ok(Operation {
        id: row.get(0)?,
        subscription: row.get(1)?,
        location: row.get(2)?,
        target_lc: row.get(3)?,
        polls_left: row.get(4)?,
        status: row.get(5)?,
        action: json_col(row, 6)?,
        event: json_col(row, 7)?,
        error: opt_json_col(row, 8)?,
        start_time: row.get(9)?,
        end_time: row.get(10)?,
    })
}

pub(crate) fn get_operation(c: &Connection, id: &str) -> rusqlite::Result<Option<Operation>> {
    c.query_row(
        &format!("SELECT {OP_COLUMNS} FROM operations WHERE id = ?1"),
        [id.to_ascii_lowercase()],
        op_row,
    )
    .optional()
}

/// The operation still in progress on `target`, if any (the oldest).
pub(crate) fn pending_operation(
    c: &Connection,
    target: &str,
    kind: &str,
) -> rusqlite::Result<Option<Operation>> {
    c.query_row(
        &format!(
            "SELECT {OP_COLUMNS} FROM operations
             WHERE target_lc = ?1 AND status = 'InProgress' AND json_extract(action, '$.kind') = ?2
             ORDER BY start_time LIMIT 1"
        ),
        params![target.to_lowercase(), kind],
        op_row,
    )
    .optional()
}

pub(crate) fn put_operation(c: &Connection, op: &Operation) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO operations (id, subscription, location, target_lc, polls_left, status, action, event,
                                 error, start_time, end_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET polls_left = ?5, status = ?6, error = ?9, end_time = ?11",
        params![
            op.id.to_ascii_lowercase(),
            op.subscription,
            op.location,
            op.target_lc,
            op.polls_left,
            op.status,
            text(&op.action),
            text(&op.event),
            op.error.as_ref().map(text),
            op.start_time,
            op.end_time
        ],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Activity log and request log

pub(crate) fn insert_event(
    c: &Connection,
    subscription: &str,
    doc: &Value,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO events (subscription, doc) VALUES (?1, ?2)",
        params![subscription.to_ascii_lowercase(), text(doc)],
    )?;
    Ok(())
}

/// The subscription's events, newest first.
pub(crate) fn list_events(c: &Connection, subscription: &str) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = c.prepare("SELECT doc FROM events WHERE subscription = ?1 ORDER BY seq DESC")?;
    stmt.query_map([subscription.to_ascii_lowercase()], |row| json_col(row, 0))?
        .collect()
}

/// One served ARM request, for `GET /_sim/requests`.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    pub time: String,
    pub method: String,
    pub path: String,
    pub api_version: String,
    pub status: u16,
    pub caller: String,
    pub correlation_id: String,
}

pub(crate) fn log_request(c: &Connection, r: &RequestLog) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO requests (time, method, path, api_version, status, caller, correlation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            r.time,
            r.method,
            r.path,
            r.api_version,
            r.status,
            r.caller,
            r.correlation_id
        ],
    )?;
    // Keep the last REQUEST_LOG_ROWS requests.
    c.execute(
        "DELETE FROM requests WHERE seq <= last_insert_rowid() - ?1",
        [REQUEST_LOG_ROWS],
    )?;
    Ok(())
}

/// How many served requests `GET /_sim/requests` can show.
const REQUEST_LOG_ROWS: i64 = 10_000;

/// The last `limit` requests, newest first.
pub(crate) fn recent_requests(c: &Connection, limit: u32) -> rusqlite::Result<Vec<RequestLog>> {
    let mut stmt = c.prepare(
        "SELECT time, method, path, api_version, status, caller, correlation_id
         FROM requests ORDER BY seq DESC LIMIT ?1",
    )?;
    stmt.query_map([limit], |row| {
        Ok(RequestLog {
            time: row.get(0)?,
            method: row.get(1)?,
            path: row.get(2)?,
            api_version: row.get(3)?,
            status: row.get(4)?,
            caller: row.get(5)?,
            correlation_id: row.get(6)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("arm-sim.db");
        // A version-1 file: today's, without what version 2 added.
        drop(open(&path, "tenant").expect("create"));
        {
            let c = Connection::open(&path).expect("reopen");
            c.execute_batch(
                "DROP TABLE secrets; DROP TABLE diagnostic_settings;
                 ALTER TABLE resources DROP COLUMN managed_by;
                 DELETE FROM resources WHERE type IN ('Microsoft.Compute/disks', 'Microsoft.Compute/virtualMachineScaleSets');
                 PRAGMA user_version = 1;",
            )
            .expect("downgrade");
        }
        let c = open(&path, "tenant").expect("upgrade");
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let vault = seed::KEY_VAULT_SECURITY.to_lowercase();
        let secrets = latest_secrets(&c, &vault, false).unwrap();
        assert_eq!(secrets.len(), 3);
        assert_eq!(
            list_diagnostic_settings(&c, seed::KEY_VAULT_SECURITY)
                .unwrap()
                .len(),
            1
        );
        let disk = get_resource(&c, seed::DISK_WEB_01_OS)
            .unwrap()
            .expect("disk");
        assert_eq!(disk.managed_by.as_deref(), Some(seed::VM_WEB_01));
        assert!(get_resource(&c, seed::VMSS_WEB).unwrap().is_some());
        drop(c);
        // Opening again changes nothing.
        let c = open(&path, "tenant").expect("reopen");
        assert_eq!(latest_secrets(&c, &vault, false).unwrap().len(), 3);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("arm-sim.db");
        drop(open(&path, "tenant").expect("create"));
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        assert!(matches!(
            open(&path, "tenant"),
            Err(SimError::Schema { version: 99, .. })
        ));
    }

    #[test]
    fn deleting_a_vault_deletes_its_secrets_and_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(&dir.path().join("arm-sim.db"), "tenant").expect("create");
        let vault = seed::KEY_VAULT_SECURITY.to_lowercase();
        assert!(!latest_secrets(&c, &vault, false).unwrap().is_empty());
        delete_resource(&c, seed::KEY_VAULT_SECURITY).unwrap();
        assert!(
            secret_versions(&c, &vault, seed::SECRET_DB_PASSWORD)
                .unwrap()
                .is_empty()
        );
        assert!(
            list_diagnostic_settings(&c, seed::KEY_VAULT_SECURITY)
                .unwrap()
                .is_empty()
        );
        assert!(find_vault(&c, "kv-security").unwrap().is_none());
    }
}
