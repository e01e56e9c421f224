//! Grants and the codes and tokens that stand for them, as a pure state
//! machine: every operation takes the time, changes the in-memory book and
//! returns the [`Change`]s to make durable. The service writes those to the
//! store before it answers, and reloads the book from them at start.
//!
//! Rules (RFC 6749, OAuth 2.1, the MCP authorization spec):
//! - an authorization code is used once; a second use revokes the grant it
//!   made (its tokens may have leaked with it);
//! - a code is bound to its client, redirect URI, PKCE challenge and
//!   `resource`, and expires (about a minute);
//! - access tokens are short-lived and never outlive their grant;
//! - a refresh token rotates on every use; presenting an old one again
//!   revokes the grant, unless its successor is still unused and the old
//!   one was rotated within the grace period (a client that lost the
//!   response);
//! - a grant ends when revoked, at its absolute end, or after its refresh
//!   token has gone unused for the idle time.
//!
//! Only keyed hashes of codes and tokens are kept ([`TokenHash`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::Lifetimes;
use super::tokens::{GrantId, Pepper, Token, TokenKind};
use crate::call::Principal;

/// One user's authorization of one client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub principal: Principal,
    pub client_id: String,
    pub redirect_uri: String,
    /// The canonical `resource` (Warden's MCP URL) the tokens are for.
    pub resource: String,
    pub scopes: Vec<String>,
    pub created: DateTime<Utc>,
    /// The absolute end.
    pub ends: DateTime<Utc>,
    /// When a refresh token of the grant was last used (or issued).
    pub refreshed: DateTime<Utc>,
    /// When and why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<(DateTime<Utc>, String)>,
    /// Entra's refresh token, sealed (base64 of [`super::seal`]'s output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// How often the grant was stepped up: its codes and tokens of an
    /// earlier generation stood for a weaker sign-in and are refused
    /// (wherever they were issued: another replica's are not in this
    /// book to be forgotten).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A stored code or token: what its hash stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub kind: Kind,
    pub grant_id: String,
    pub expires: DateTime<Utc>,
    /// Codes: the redirect URI, PKCE challenge and resource it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// Codes: used; refresh tokens: rotated (with when, and the hash of
    /// the token that replaced it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<(DateTime<Utc>, Option<String>)>,
    /// The grant's [`Grant::generation`] when this was issued.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
}

/// What a code is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub resource: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Code,
    Access,
    Refresh,
}

impl From<Kind> for TokenKind {
    fn from(kind: Kind) -> TokenKind {
        match kind {
            Kind::Code => TokenKind::Code,
            Kind::Access => TokenKind::Access,
            Kind::Refresh => TokenKind::Refresh,
        }
    }
}

/// A change to make durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Grant(Box<Grant>),
    Issued(String, Issued),
    /// The hash no longer stands for anything (expired or cleaned up).
    Forget(String),
}

/// Why a code or token was refused (the OAuth error is `invalid_grant`
/// unless said otherwise). The texts never contain a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the code or token is unknown or expired")]
    Unknown,
    #[error("the code was already used; the grant it made is revoked")]
    CodeReused,
    #[error("the refresh token was already used; the grant is revoked")]
    RefreshReused,
    #[error("the code was issued to another client")]
    OtherClient,
    #[error("redirect_uri differs from the authorization request's")]
    RedirectMismatch,
    #[error("the PKCE code_verifier does not match the code_challenge")]
    Pkce,
    #[error("resource differs from the authorization request's")]
    ResourceMismatch,
    #[error("the grant was revoked: {0}")]
    Revoked(String),
    #[error("the grant has ended")]
    Ended,
}

/// A code (or refresh token) redeemed: the grant, and the changes so far.
pub struct Redeemed {
    pub grant: Grant,
    pub changes: Vec<Change>,
}

/// Fresh tokens for a grant.
pub struct Tokens {
    pub access: Token,
    pub refresh: Token,
    pub access_expires: DateTime<Utc>,
}

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Every grant, code and token Warden has issued and not yet forgotten.
#[derive(Debug, Default)]
pub struct Book {
    grants: HashMap<String, Grant>,
    issued: HashMap<String, Issued>,
}

impl Book {
    /// A book rebuilt from stored grants and issued codes and tokens.
    pub fn load(
        grants: impl IntoIterator<Item = Grant>,
        issued: impl IntoIterator<Item = (String, Issued)>,
    ) -> Book {
        Book {
            grants: grants.into_iter().map(|g| (g.id.clone(), g)).collect(),
            issued: issued.into_iter().collect(),
        }
    }

    pub fn grant(&self, id: &str) -> Option<&Grant> {
        self.grants.get(id)
    }

    /// Replaces what this book knows of code or token `hash` with the
    /// store's copy (`None`: the store has none), before a decision on a
    /// store other replicas write too.
    pub fn put_issued(&mut self, hash: &str, issued: Option<Issued>) {
        match issued {
            Some(issued) => {
                self.issued.insert(hash.to_owned(), issued);
            }
            None => {
                self.issued.remove(hash);
            }
        }
    }

    /// Replaces what this book knows of grant `id` with the store's copy.
    pub fn put_grant(&mut self, id: &str, grant: Option<Grant>) {
        match grant {
            Some(grant) => {
                self.grants.insert(id.to_owned(), grant);
            }
            None => {
                self.grants.remove(id);
            }
        }
    }

    /// Notes that a refresh token of grant `id` was used at `now` (what
    /// [`Book::use_refresh`] does to the grant).
    pub fn touch(&mut self, id: &str, now: DateTime<Utc>) -> Vec<Change> {
        match self.grants.get_mut(id) {
            Some(grant) => {
                grant.refreshed = grant.refreshed.max(now);
                vec![Change::Grant(Box::new(grant.clone()))]
            }
            None => Vec::new(),
        }
    }

    /// Why `grant` cannot be used at `now`, if it cannot.
    fn unusable(grant: &Grant, lifetimes: &Lifetimes, now: DateTime<Utc>) -> Option<GrantError> {
        if let Some((_, why)) = &grant.revoked {
            return Some(GrantError::Revoked(why.clone()));
        }
        if now >= grant.ends || now >= grant.refreshed + chrono(lifetimes.refresh_idle) {
            return Some(GrantError::Ended);
        }
        None
    }

    /// A new grant for `principal` and a code for it.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        pepper: &Pepper,
        principal: Principal,
        binding: Binding,
        scopes: Vec<String>,
        upstream: Option<String>,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> (Grant, Token, Vec<Change>) {
        let id = GrantId::generate();
        let grant = Grant {
            id: id.as_str().to_owned(),
            principal,
            client_id: binding.client_id.clone(),
            redirect_uri: binding.redirect_uri.clone(),
            resource: binding.resource.clone(),
            scopes,
            created: now,
            ends: now + chrono(lifetimes.refresh_absolute),
            refreshed: now,
            revoked: None,
            upstream,
            generation: 0,
        };
        let code = Token::generate(TokenKind::Code, &id);
        let hash = pepper.hash(&code).as_str().to_owned();
        let issued = Issued {
            kind: Kind::Code,
            grant_id: grant.id.clone(),
            expires: now + chrono(lifetimes.code),
            binding: Some(binding),
            spent: None,
            generation: 0,
        };
        self.grants.insert(grant.id.clone(), grant.clone());
        self.issued.insert(hash.clone(), issued.clone());
        let changes = vec![
            Change::Grant(Box::new(grant.clone())),
            Change::Issued(hash, issued),
        ];
        (grant, code, changes)
    }

    /// Steps grant `id` up in place, after a step-up sign-in of its user
    /// through its client (MCP's step-up authorization): the principal of
    /// Entra's new token, the new request's scopes and redirect URI, and a
    /// code bound to the new request. The grant's unspent codes and tokens
    /// are forgotten, since they stood for the weaker sign-in (spent ones
    /// stay, so their reuse is still caught); its id, and so the MCP
    /// sessions bound to it, stay. `None` when the grant cannot be stepped
    /// up (gone, ended, revoked, or another user, client or resource): the
    /// caller opens a new grant instead.
    #[allow(clippy::too_many_arguments)]
    pub fn step_up(
        &mut self,
        pepper: &Pepper,
        id: &str,
        principal: Principal,
        binding: Binding,
        scopes: Vec<String>,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> Option<(Grant, Token, Vec<Change>)> {
        let grant = self.grants.get(id)?;
        if Self::unusable(grant, lifetimes, now).is_some()
            || grant.principal.tid != principal.tid
            || grant.principal.oid != principal.oid
            || grant.client_id != binding.client_id
            || grant.resource != binding.resource
        {
            return None;
        }
        let grant_id = GrantId::parse(id).ok()?;
        let mut changes = Vec::new();
        self.issued.retain(|hash, issued| {
            let stale = issued.grant_id == id && issued.spent.is_none();
            if stale {
                changes.push(Change::Forget(hash.clone()));
            }
            !stale
        });
        let grant = self.grants.get_mut(id)?;
        grant.principal = principal;
        grant.scopes = scopes;
        grant.redirect_uri = binding.redirect_uri.clone();
        grant.refreshed = now;
        grant.generation += 1;
        let grant = grant.clone();
        let code = Token::generate(TokenKind::Code, &grant_id);
        let hash = pepper.hash(&code).as_str().to_owned();
        let issued = Issued {
            kind: Kind::Code,
            grant_id: grant.id.clone(),
            expires: now + chrono(lifetimes.code),
            binding: Some(binding),
            spent: None,
            generation: grant.generation,
        };
        self.issued.insert(hash.clone(), issued.clone());
        changes.push(Change::Grant(Box::new(grant.clone())));
        changes.push(Change::Issued(hash, issued));
        Some((grant, code, changes))
    }

    /// Redeems an authorization code (`/token`, `grant_type=authorization_code`).
    /// `check_pkce` says whether the verifier matches the bound challenge.
    #[allow(clippy::too_many_arguments)]
    pub fn redeem_code(
        &mut self,
        pepper: &Pepper,
        code: &Token,
        client_id: &str,
        redirect_uri: &str,
        resource: &str,
        check_pkce: impl FnOnce(&str) -> bool,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, (GrantError, Vec<Change>)> {
        let (hash, issued) = self
            .lookup(pepper, code, Kind::Code)
            .ok_or((GrantError::Unknown, Vec::new()))?;
        if issued.spent.is_some() {
            let changes = self.revoke_grant(
                &issued.grant_id,
                "its authorization code was used twice",
                now,
            );
            return Err((GrantError::CodeReused, changes));
        }
        if now >= issued.expires || self.superseded(&issued) {
            return Err((GrantError::Unknown, Vec::new()));
        }
        let Some(binding) = &issued.binding else {
            return Err((GrantError::Unknown, Vec::new()));
        };
        if binding.client_id != client_id {
            return Err((GrantError::OtherClient, Vec::new()));
        }
        if binding.redirect_uri != redirect_uri {
            return Err((GrantError::RedirectMismatch, Vec::new()));
        }
        if binding.resource != resource {
            return Err((GrantError::ResourceMismatch, Vec::new()));
        }
        if !check_pkce(&binding.challenge) {
            return Err((GrantError::Pkce, Vec::new()));
        }
        // Spent from here on, whatever happens next.
        let mut spent = issued.clone();
        spent.spent = Some((now, None));
        self.issued.insert(hash.clone(), spent.clone());
        let changes = vec![Change::Issued(hash, spent)];
        let grant = self
            .grants
            .get(&issued.grant_id)
            .cloned()
            .ok_or((GrantError::Unknown, Vec::new()))?;
        if let Some(error) = Self::unusable(&grant, lifetimes, now) {
            return Err((error, changes));
        }
        Ok(Redeemed { grant, changes })
    }

    /// Whether `issued` stood for a sign-in its grant was since stepped up
    /// from.
    fn superseded(&self, issued: &Issued) -> bool {
        self.grants
            .get(&issued.grant_id)
            .is_some_and(|grant| grant.generation != issued.generation)
    }

    /// The stored hash and record of `token`, if it is a `kind` this book
    /// issued for the grant its id names.
    fn lookup(&self, pepper: &Pepper, token: &Token, kind: Kind) -> Option<(String, Issued)> {
        let hash = pepper.hash(token).as_str().to_owned();
        let issued = self
            .issued
            .get(&hash)
            .filter(|i| i.kind == kind && i.grant_id == token.grant_id().as_str())?
            .clone();
        Some((hash, issued))
    }

    /// New access and refresh tokens for `grant_id`.
    pub fn issue(
        &mut self,
        pepper: &Pepper,
        grant_id: &str,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> Result<(Tokens, Vec<Change>), GrantError> {
        let grant = self.grants.get(grant_id).ok_or(GrantError::Unknown)?;
        if let Some(error) = Self::unusable(grant, lifetimes, now) {
            return Err(error);
        }
        let id = GrantId::parse(grant_id).map_err(|_| GrantError::Unknown)?;
        let access_expires = (now + chrono(lifetimes.access_token)).min(grant.ends);
        let refresh_expires = (now + chrono(lifetimes.refresh_idle)).min(grant.ends);
        let generation = grant.generation;
        let access = Token::generate(TokenKind::Access, &id);
        let refresh = Token::generate(TokenKind::Refresh, &id);
        let mut changes = Vec::new();
        for (token, kind, expires) in [
            (&access, Kind::Access, access_expires),
            (&refresh, Kind::Refresh, refresh_expires),
        ] {
            let hash = pepper.hash(token).as_str().to_owned();
            let issued = Issued {
                kind,
                grant_id: grant_id.to_owned(),
                expires,
                binding: None,
                spent: None,
                generation,
            };
            self.issued.insert(hash.clone(), issued.clone());
            changes.push(Change::Issued(hash, issued));
        }
        Ok((
            Tokens {
                access,
                refresh,
                access_expires,
            },
            changes,
        ))
    }

    /// Uses a refresh token (`grant_type=refresh_token`): the grant it
    /// stands for, with the token marked rotated; the caller then issues
    /// new tokens with [`Book::issue`] and links them with
    /// [`Book::rotated_to`].
    pub fn use_refresh(
        &mut self,
        pepper: &Pepper,
        token: &Token,
        client_id: &str,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, (GrantError, Vec<Change>)> {
        let (hash, issued) = self
            .lookup(pepper, token, Kind::Refresh)
            .ok_or((GrantError::Unknown, Vec::new()))?;
        let grant = self
            .grants
            .get(&issued.grant_id)
            .cloned()
            .ok_or((GrantError::Unknown, Vec::new()))?;
        if grant.client_id != client_id {
            return Err((GrantError::OtherClient, Vec::new()));
        }
        if let Some((at, successor)) = &issued.spent {
            let successor_unused = successor
                .as_ref()
                .and_then(|s| self.issued.get(s))
                .is_some_and(|s| s.spent.is_none());
            // A grace of zero honours nothing (whatever the clocks of the
            // replicas that rotated it and that see it now).
            let within_grace = !lifetimes.refresh_reuse_grace.is_zero()
                && now < *at + chrono(lifetimes.refresh_reuse_grace);
            if !(successor_unused && within_grace) {
                let changes =
                    self.revoke_grant(&issued.grant_id, "an old refresh token was used again", now);
                return Err((GrantError::RefreshReused, changes));
            }
        } else if now >= issued.expires || issued.generation != grant.generation {
            return Err((GrantError::Unknown, Vec::new()));
        }
        if let Some(error) = Self::unusable(&grant, lifetimes, now) {
            return Err((error, Vec::new()));
        }
        let mut spent = issued;
        if spent.spent.is_none() {
            spent.spent = Some((now, None));
        }
        self.issued.insert(hash.clone(), spent.clone());
        let mut refreshed = grant;
        refreshed.refreshed = now;
        self.grants.insert(refreshed.id.clone(), refreshed.clone());
        Ok(Redeemed {
            changes: vec![
                Change::Issued(hash, spent),
                Change::Grant(Box::new(refreshed.clone())),
            ],
            grant: refreshed,
        })
    }

    /// Notes that the refresh token `old` was replaced by `new`.
    pub fn rotated_to(&mut self, pepper: &Pepper, old: &Token, new: &Token) -> Vec<Change> {
        let old_hash = pepper.hash(old).as_str().to_owned();
        let new_hash = pepper.hash(new).as_str().to_owned();
        match self.issued.get_mut(&old_hash) {
            Some(issued) => {
                if let Some((_, successor)) = &mut issued.spent {
                    *successor = Some(new_hash);
                }
                vec![Change::Issued(old_hash, issued.clone())]
            }
            None => Vec::new(),
        }
    }

    /// Undoes [`Book::use_refresh`] when no new tokens came of it (Entra
    /// could not be asked): the token stays usable, so the client's retry
    /// is not taken for a reuse. A token that already has a successor is
    /// left as it is.
    pub fn unuse_refresh(&mut self, pepper: &Pepper, token: &Token) -> Vec<Change> {
        let hash = pepper.hash(token).as_str().to_owned();
        match self.issued.get_mut(&hash) {
            Some(issued) if matches!(issued.spent, Some((_, None))) => {
                issued.spent = None;
                vec![Change::Issued(hash, issued.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// Replaces the grant's sealed upstream token (after an Entra refresh).
    pub fn set_upstream(&mut self, grant_id: &str, upstream: Option<String>) -> Vec<Change> {
        match self.grants.get_mut(grant_id) {
            Some(grant) => {
                grant.upstream = upstream;
                vec![Change::Grant(Box::new(grant.clone()))]
            }
            None => Vec::new(),
        }
    }

    /// Replaces the grant's principal (after an Entra refresh: the facts of
    /// Entra's newest token).
    pub fn set_principal(&mut self, grant_id: &str, principal: Principal) -> Vec<Change> {
        match self.grants.get_mut(grant_id) {
            Some(grant) => {
                grant.principal = principal;
                vec![Change::Grant(Box::new(grant.clone()))]
            }
            None => Vec::new(),
        }
    }

    /// The grant an access token stands for, if it may be used at `now`.
    pub fn authenticate(
        &self,
        pepper: &Pepper,
        token: &Token,
        lifetimes: &Lifetimes,
        now: DateTime<Utc>,
    ) -> Result<&Grant, GrantError> {
        let hash = pepper.hash(token);
        let issued = self
            .issued
            .get(hash.as_str())
            .filter(|i| i.kind == Kind::Access && i.grant_id == token.grant_id().as_str())
            .ok_or(GrantError::Unknown)?;
        if now >= issued.expires {
            return Err(GrantError::Unknown);
        }
        let grant = self
            .grants
            .get(&issued.grant_id)
            .filter(|grant| grant.generation == issued.generation)
            .ok_or(GrantError::Unknown)?;
        match Self::unusable(grant, lifetimes, now) {
            Some(error) => Err(error),
            None => Ok(grant),
        }
    }

    /// Revokes the grant of any of its codes or tokens (RFC 7009: an
    /// unknown token is not an error).
    pub fn revoke_token(
        &mut self,
        pepper: &Pepper,
        token: &Token,
        why: &str,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let hash = pepper.hash(token);
        match self.issued.get(hash.as_str()) {
            Some(issued) if issued.grant_id == token.grant_id().as_str() => {
                let grant = issued.grant_id.clone();
                self.revoke_grant(&grant, why, now)
            }
            _ => Vec::new(),
        }
    }

    /// Revokes grant `id` (kept, marked, so its tokens stop working).
    pub fn revoke_grant(&mut self, id: &str, why: &str, now: DateTime<Utc>) -> Vec<Change> {
        match self.grants.get_mut(id) {
            Some(grant) if grant.revoked.is_none() => {
                grant.revoked = Some((now, why.to_owned()));
                grant.upstream = None;
                vec![Change::Grant(Box::new(grant.clone()))]
            }
            _ => Vec::new(),
        }
    }

    /// Forgets codes and tokens expired before `now` (a rotated refresh
    /// token is kept until its own expiry, to detect reuse) and grants
    /// ended more than a day ago.
    pub fn sweep(&mut self, lifetimes: &Lifetimes, now: DateTime<Utc>) -> Vec<Change> {
        let mut changes = Vec::new();
        self.issued.retain(|hash, issued| {
            let keep = now < issued.expires;
            if !keep {
                changes.push(Change::Forget(hash.clone()));
            }
            keep
        });
        let day = chrono::Duration::days(1);
        self.grants.retain(|_, grant| {
            let over = grant
                .revoked
                .as_ref()
                .map(|(at, _)| *at)
                .unwrap_or(grant.ends)
                .min(grant.refreshed + chrono(lifetimes.refresh_idle));
            now < over + day
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn pepper() -> Pepper {
        Pepper::from_bytes(&[7u8; 32]).unwrap()
    }

    fn principal() -> Principal {
        Principal::anonymous(None)
    }

    fn binding(client: &str) -> Binding {
        Binding {
            client_id: client.into(),
            redirect_uri: "http://127.0.0.1:3000/cb".into(),
            challenge: "challenge".into(),
            resource: "https://warden.example/mcp".into(),
        }
    }

    fn opened(book: &mut Book) -> (Grant, Token) {
        let (grant, code, changes) = book.open(
            &pepper(),
            principal(),
            binding("client-a"),
            vec!["mcp".into()],
            None,
            &Lifetimes::default(),
            t0(),
        );
        assert_eq!(changes.len(), 2);
        (grant, code)
    }

    fn redeem(
        book: &mut Book,
        code: &Token,
        client: &str,
        at: DateTime<Utc>,
    ) -> Result<Redeemed, (GrantError, Vec<Change>)> {
        book.redeem_code(
            &pepper(),
            code,
            client,
            "http://127.0.0.1:3000/cb",
            "https://warden.example/mcp",
            |challenge| challenge == "challenge",
            &Lifetimes::default(),
            at,
        )
    }

    #[test]
    fn a_code_is_used_once_and_reuse_revokes_the_grant() {
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        let redeemed = redeem(&mut book, &code, "client-a", t0() + secs(5))
            .ok()
            .unwrap();
        assert_eq!(redeemed.grant.id, grant.id);
        let (tokens, _) = book
            .issue(&pepper(), &grant.id, &Lifetimes::default(), t0() + secs(5))
            .unwrap();
        assert!(
            book.authenticate(
                &pepper(),
                &tokens.access,
                &Lifetimes::default(),
                t0() + secs(6)
            )
            .is_ok()
        );
        let (error, changes) = redeem(&mut book, &code, "client-a", t0() + secs(7))
            .err()
            .unwrap();
        assert_eq!(error, GrantError::CodeReused);
        assert!(matches!(&changes[0], Change::Grant(g) if g.revoked.is_some()));
        // The tokens the first use gave stop working.
        let refused = book.authenticate(
            &pepper(),
            &tokens.access,
            &Lifetimes::default(),
            t0() + secs(8),
        );
        assert!(matches!(refused, Err(GrantError::Revoked(_))));
    }

    #[test]
    fn a_code_is_bound_to_its_client_redirect_resource_and_challenge_and_expires() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        for (client, redirect, resource, verifier_ok, at, expected) in [
            (
                "client-b",
                "http://127.0.0.1:3000/cb",
                "https://warden.example/mcp",
                true,
                secs(1),
                GrantError::OtherClient,
            ),
            (
                "client-a",
                "http://127.0.0.1:3001/cb",
                "https://warden.example/mcp",
                true,
                secs(1),
                GrantError::RedirectMismatch,
            ),
            (
                "client-a",
                "http://127.0.0.1:3000/cb",
                "https://other.example/mcp",
                true,
                secs(1),
                GrantError::ResourceMismatch,
            ),
            (
                "client-a",
                "http://127.0.0.1:3000/cb",
                "https://warden.example/mcp",
                false,
                secs(1),
                GrantError::Pkce,
            ),
            (
                "client-a",
                "http://127.0.0.1:3000/cb",
                "https://warden.example/mcp",
                true,
                secs(60),
                GrantError::Unknown,
            ),
        ] {
            let mut book = Book::default();
            let (_, code) = opened(&mut book);
            let (error, _) = book
                .redeem_code(
                    &p,
                    &code,
                    client,
                    redirect,
                    resource,
                    |_| verifier_ok,
                    &lifetimes,
                    t0() + at,
                )
                .err()
                .unwrap();
            assert_eq!(error, expected);
            // A refused attempt does not spend the code: the right client
            // can still redeem it in time.
            let again = redeem(&mut book, &code, "client-a", t0() + secs(2));
            assert!(again.is_ok(), "{expected:?}");
        }
    }

    #[test]
    fn refresh_tokens_rotate_and_reuse_revokes_the_grant() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (first, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        // Another client cannot use it.
        let (error, _) = book
            .use_refresh(&p, &first.refresh, "client-b", &lifetimes, t0())
            .err()
            .unwrap();
        assert_eq!(error, GrantError::OtherClient);
        let at = t0() + secs(3600);
        book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, at)
            .ok()
            .unwrap();
        let (second, _) = book.issue(&p, &grant.id, &lifetimes, at).unwrap();
        book.rotated_to(&p, &first.refresh, &second.refresh);
        // Within the grace, with the successor unused: honoured again.
        assert!(
            book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, at + secs(30))
                .is_ok()
        );
        // Once the successor is used, the old one revokes the grant.
        book.use_refresh(&p, &second.refresh, "client-a", &lifetimes, at + secs(40))
            .ok()
            .unwrap();
        let (error, changes) = book
            .use_refresh(&p, &first.refresh, "client-a", &lifetimes, at + secs(50))
            .err()
            .unwrap();
        assert_eq!(error, GrantError::RefreshReused);
        assert!(!changes.is_empty());
        assert!(matches!(
            book.issue(&p, &grant.id, &lifetimes, at + secs(60)),
            Err(GrantError::Revoked(_))
        ));
    }

    #[test]
    fn a_refresh_that_issued_nothing_can_be_retried() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (first, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, t0())
            .ok()
            .unwrap();
        // Entra could not be asked: nothing was issued, the use is undone.
        assert_eq!(book.unuse_refresh(&p, &first.refresh).len(), 1);
        let retry = book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, t0() + secs(120));
        assert!(retry.is_ok(), "the retry is not a reuse");
        // Once it has a successor, undoing changes nothing.
        let (second, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.rotated_to(&p, &first.refresh, &second.refresh);
        assert!(book.unuse_refresh(&p, &first.refresh).is_empty());
    }

    #[test]
    fn without_a_grace_an_old_refresh_token_revokes_even_at_its_rotation_time() {
        let lifetimes = Lifetimes {
            refresh_reuse_grace: std::time::Duration::ZERO,
            ..Lifetimes::default()
        };
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (first, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        let at = t0() + secs(10);
        book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, at)
            .ok()
            .unwrap();
        let (second, _) = book.issue(&p, &grant.id, &lifetimes, at).unwrap();
        book.rotated_to(&p, &first.refresh, &second.refresh);
        // Another replica whose clock is behind sees it "before" it was used.
        let (error, _) = book
            .use_refresh(&p, &first.refresh, "client-a", &lifetimes, at - secs(1))
            .err()
            .unwrap();
        assert_eq!(error, GrantError::RefreshReused);
    }

    #[test]
    fn an_old_refresh_token_past_the_grace_revokes_even_with_an_unused_successor() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (first, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, t0())
            .ok()
            .unwrap();
        let (second, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.rotated_to(&p, &first.refresh, &second.refresh);
        let late = t0() + secs(61);
        let (error, _) = book
            .use_refresh(&p, &first.refresh, "client-a", &lifetimes, late)
            .err()
            .unwrap();
        assert_eq!(error, GrantError::RefreshReused);
    }

    #[test]
    fn access_tokens_expire_and_grants_end_when_idle_or_revoked() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (tokens, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        assert_eq!(tokens.access_expires, t0() + secs(3600));
        assert!(
            book.authenticate(&p, &tokens.access, &lifetimes, t0() + secs(3599))
                .is_ok()
        );
        assert_eq!(
            book.authenticate(&p, &tokens.access, &lifetimes, t0() + secs(3600))
                .err(),
            Some(GrantError::Unknown)
        );
        // Idle past refresh_idle: the grant has ended.
        let idle = t0() + chrono(lifetimes.refresh_idle);
        assert_eq!(
            book.use_refresh(&p, &tokens.refresh, "client-a", &lifetimes, idle)
                .err()
                .map(|e| e.0),
            Some(GrantError::Unknown)
        );
        assert_eq!(
            book.issue(&p, &grant.id, &lifetimes, idle).err(),
            Some(GrantError::Ended)
        );
        // Revocation by any of its tokens (RFC 7009), and unknown tokens are fine.
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (tokens, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        assert!(
            !book
                .revoke_token(&p, &tokens.refresh, "signed out", t0())
                .is_empty()
        );
        assert!(matches!(
            book.authenticate(&p, &tokens.access, &lifetimes, t0()),
            Err(GrantError::Revoked(why)) if why == "signed out"
        ));
        let stranger = Token::generate(TokenKind::Access, &GrantId::generate());
        assert!(book.revoke_token(&p, &stranger, "x", t0()).is_empty());
    }

    #[test]
    fn a_token_with_another_grants_id_is_not_accepted() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (tokens, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        // The same secret under another grant id hashes differently: unknown.
        let forged = Token::parse(&tokens.access.expose().replacen(
            &grant.id,
            &GrantId::generate().to_string(),
            1,
        ));
        if let Ok(forged) = forged {
            assert!(book.authenticate(&p, &forged, &lifetimes, t0()).is_err());
        }
    }

    #[test]
    fn a_grant_steps_up_in_place_and_its_older_tokens_stop_working() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        let (first, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.use_refresh(&p, &first.refresh, "client-a", &lifetimes, t0())
            .ok()
            .unwrap();
        let (second, _) = book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        book.rotated_to(&p, &first.refresh, &second.refresh);

        let mut stronger = principal();
        stronger.acrs.insert("c1".into());
        stronger.mfa = true;
        let mut new_binding = binding("client-a");
        new_binding.redirect_uri = "http://127.0.0.1:4000/cb".into();
        let at = t0() + secs(60);
        // Another client, user or resource cannot step this grant up.
        let mut other = new_binding.clone();
        other.client_id = "client-b".into();
        let scopes = vec!["mcp".to_owned(), "mfa".to_owned()];
        let step = |book: &mut Book, who: Principal, binding: Binding| {
            book.step_up(&p, &grant.id, who, binding, scopes.clone(), &lifetimes, at)
        };
        assert!(step(&mut book, stronger.clone(), other).is_none());
        let mut stranger = stronger.clone();
        stranger.oid = "someone-else".into();
        assert!(step(&mut book, stranger, new_binding.clone()).is_none());
        let mut elsewhere = new_binding.clone();
        elsewhere.resource = "https://other.example/mcp".into();
        assert!(step(&mut book, stronger.clone(), elsewhere).is_none());

        let (stepped, code, changes) = step(&mut book, stronger.clone(), new_binding).unwrap();
        assert_eq!(stepped.id, grant.id, "same grant, so its sessions go on");
        assert!(stepped.principal.mfa && stepped.principal.acrs.contains("c1"));
        assert_eq!(stepped.scopes, ["mcp", "mfa"]);
        assert_eq!(stepped.redirect_uri, "http://127.0.0.1:4000/cb");
        // The unspent access and refresh tokens are forgotten.
        let forgotten = changes
            .iter()
            .filter(|c| matches!(c, Change::Forget(_)))
            .count();
        assert_eq!(forgotten, 3, "{changes:?}");
        for access in [&first.access, &second.access] {
            assert_eq!(
                book.authenticate(&p, access, &lifetimes, at).err(),
                Some(GrantError::Unknown)
            );
        }
        assert_eq!(
            book.use_refresh(&p, &second.refresh, "client-a", &lifetimes, at)
                .err()
                .map(|e| e.0),
            Some(GrantError::Unknown)
        );
        // The new code redeems at the new redirect URI, for the stronger
        // principal.
        let redeemed = book
            .redeem_code(
                &p,
                &code,
                "client-a",
                "http://127.0.0.1:4000/cb",
                "https://warden.example/mcp",
                |challenge| challenge == "challenge",
                &lifetimes,
                at,
            )
            .ok()
            .unwrap();
        assert_eq!(redeemed.grant.principal, stronger);
        let (tokens, _) = book.issue(&p, &grant.id, &lifetimes, at).unwrap();
        assert!(
            book.authenticate(&p, &tokens.access, &lifetimes, at)
                .is_ok()
        );
        // Tokens of the weaker sign-in that this book never knew (another
        // replica issued them) are refused too.
        let (elsewhere, more) = {
            let mut other = Book::load(vec![grant.clone()], Vec::<(String, Issued)>::new());
            other.issue(&p, &grant.id, &lifetimes, t0()).unwrap()
        };
        for change in more {
            if let Change::Issued(hash, issued) = change {
                book.put_issued(&hash, Some(issued));
            }
        }
        assert_eq!(
            book.authenticate(&p, &elsewhere.access, &lifetimes, at)
                .err(),
            Some(GrantError::Unknown)
        );
        assert_eq!(
            book.use_refresh(&p, &elsewhere.refresh, "client-a", &lifetimes, at)
                .err()
                .map(|e| e.0),
            Some(GrantError::Unknown)
        );
        // A spent refresh token is still caught when reused.
        let (error, _) = book
            .use_refresh(&p, &first.refresh, "client-a", &lifetimes, at)
            .err()
            .unwrap();
        assert_eq!(error, GrantError::RefreshReused);
        // A revoked grant is not stepped up.
        let mut book = Book::default();
        let (grant, _) = opened(&mut book);
        book.revoke_grant(&grant.id, "x", t0());
        assert!(
            book.step_up(
                &p,
                &grant.id,
                principal(),
                binding("client-a"),
                vec![],
                &lifetimes,
                t0()
            )
            .is_none()
        );
    }

    #[test]
    fn sweeping_forgets_expired_codes_and_tokens() {
        let lifetimes = Lifetimes::default();
        let p = pepper();
        let mut book = Book::default();
        let (grant, code) = opened(&mut book);
        redeem(&mut book, &code, "client-a", t0()).ok().unwrap();
        book.issue(&p, &grant.id, &lifetimes, t0()).unwrap();
        let forgotten = book.sweep(&lifetimes, t0() + secs(3600));
        // The code and the access token; the refresh token lives on.
        assert_eq!(forgotten.len(), 2);
        assert!(book.grant(&grant.id).is_some());
    }
}
