//! Browser cookies for Warden's own pages (the approvals page, the OAuth
//! facade's consent and sign-in): reading one from a request, writing one,
//! and the one rule for `Secure`: it is left out only for plain HTTP from
//! a loopback peer (`warden dev` on `http://127.0.0.1`, where a browser
//! would drop a `Secure` cookie). Warden itself speaks plain HTTP, so
//! anything else is taken to be behind a TLS-terminating proxy.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, header};

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request came over plain HTTP from a loopback peer: no TLS
/// proxy in front said otherwise (`X-Forwarded-Proto: https` or
/// `Forwarded: proto=https`).
pub fn plain_loopback(headers: &HeaderMap, peer: IpAddr) -> bool {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        || headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([';', ',']))
            .any(|p| p.trim().eq_ignore_ascii_case("proto=https"));
    peer.to_canonical().is_loopback() && !https
}

/// How a cookie is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Never on a request another site started.
    Strict,
    /// Also on top-level navigations from another site (a sign-in
    /// provider redirecting back).
    Lax,
}

/// A `Set-Cookie` value: `HttpOnly`, the given `SameSite` and `Path`,
/// `Max-Age` (0 deletes it) and `Secure` when `secure`.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    same_site: SameSite,
    max_age: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    HeaderValue::try_from(format!(
        "{name}={value}; HttpOnly; SameSite={same_site}; Path={path}; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}
