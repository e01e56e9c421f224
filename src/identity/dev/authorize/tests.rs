//! The authorization endpoint over HTTP: sign-in by `login_hint`, Entra's
//! errors on the redirect and on the error page, the persona picker and
//! its form.

use super::super::test_support::{
    Pkce, Served, authorize_params, authorize_url, browser, form, location_params, redeem,
    serve_with_sign_in, sign_in,
};
use super::super::{DEV_CONFIDENTIAL_CLIENT, DEV_TENANT, DevUser};

const SCOPE: &str = "api://warden-dev/access_as_user openid offline_access";

async fn get(served: &Served, pairs: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .get(authorize_url(&served.base_url, pairs))
        .send()
        .await
        .expect("authorize")
}

/// `pairs` with `name` replaced by `value` (or removed when `None`),
/// `name` appended when it was absent.
fn with<'a>(
    pairs: &[(&'a str, &'a str)],
    name: &'a str,
    value: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = pairs.iter().copied().filter(|(k, _)| *k != name).collect();
    if let Some(value) = value {
        out.push((name, value));
    }
    out
}

#[tokio::test]
async fn login_hint_signs_in_at_once_with_code_and_state() {
    let served = serve_with_sign_in().await;
    let pkce = Pkce::new();
    // By persona name or user principal name, without case.
    for hint in ["developer", "Dana.Developer@contoso.dev"] {
        let code = sign_in(&served, hint, SCOPE, Some(&pkce), &[("nonce", "n-1")]).await;
        assert_eq!(code.len(), 43);
    }
    // A code of every sign-in is different.
    let a = sign_in(&served, "developer", SCOPE, None, &[]).await;
    let b = sign_in(&served, "developer", SCOPE, None, &[]).await;
    assert_ne!(a, b);
    // Without `state` the redirect has none.
    let pairs = with(&authorize_params(SCOPE, None), "state", None);
    let response = get(&served, &with(&pairs, "login_hint", Some("auditor"))).await;
    assert_eq!(response.status().as_u16(), 302);
    let (_, params) = location_params(&response);
    assert!(params.contains_key("code"));
    assert!(!params.contains_key("state"), "{params:?}");
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn errors_go_to_the_registered_redirect_uri_as_entra_sends_them() {
    let served = serve_with_sign_in().await;
    let pkce = Pkce::new();
    let good = with(
        &authorize_params(SCOPE, Some(&pkce)),
        "login_hint",
        Some("developer"),
    );
    let long_challenge = "a".repeat(44);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u32);
    let cases: Vec<Case> = vec![
        (
            "resource parameter",
            with(&good, "resource", Some("https://warden.example/mcp")),
            "invalid_target",
            9010010,
        ),
        (
            ".default mixed with a scope of its resource",
            with(
                &good,
                "scope",
                Some("api://warden-dev/.default api://warden-dev/access_as_user openid"),
            ),
            "invalid_scope",
            70011,
        ),
        (
            "offline_access alone",
            with(&good, "scope", Some("offline_access")),
            "invalid_scope",
            70011,
        ),
        (
            "no scope",
            with(&good, "scope", None),
            "invalid_request",
            900144,
        ),
        (
            "plain PKCE",
            with(&good, "code_challenge_method", Some("plain")),
            "invalid_request",
            50149,
        ),
        (
            "challenge without a method (plain by default)",
            with(&good, "code_challenge_method", None),
            "invalid_request",
            50149,
        ),
        (
            "method without a challenge",
            with(&good, "code_challenge", None),
            "invalid_request",
            900144,
        ),
        (
            "challenge of the wrong size",
            with(&good, "code_challenge", Some(&long_challenge)),
            "invalid_request",
            501491,
        ),
        (
            "implicit flow",
            with(&good, "response_type", Some("token")),
            "unsupported_response_type",
            700054,
        ),
        (
            "no response type",
            with(&good, "response_type", None),
            "invalid_request",
            900144,
        ),
        (
            "form_post",
            with(&good, "response_mode", Some("form_post")),
            "invalid_request",
            9002313,
        ),
        (
            "two prompts",
            with(&good, "prompt", Some("consent select_account")),
            "invalid_request",
            90023,
        ),
        (
            "claims that are not JSON",
            with(&good, "claims", Some("{acrs")),
            "invalid_request",
            9002313,
        ),
        (
            "a repeated scope",
            [good.clone(), vec![("scope", "openid")]].concat(),
            "invalid_request",
            9000411,
        ),
        (
            "prompt=none without a hint",
            with(&with(&good, "login_hint", None), "prompt", Some("none")),
            "login_required",
            50058,
        ),
        (
            "prompt=none for a user who does not exist",
            with(
                &with(&good, "login_hint", Some("nobody")),
                "prompt",
                Some("none"),
            ),
            "login_required",
            50034,
        ),
    ];
    for (name, pairs, error, code) in cases {
        let response = get(&served, &pairs).await;
        assert_eq!(response.status().as_u16(), 302, "{name}");
        let (target, params) = location_params(&response);
        assert_eq!(target, "http://127.0.0.1:4711/callback", "{name}");
        assert_eq!(params["error"], error, "{name}: {params:?}");
        let description = params["error_description"].as_str().unwrap();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{name}: {description}"
        );
        assert_eq!(params["state"], "xyz", "{name}");
        assert!(!params.contains_key("code"), "{name}");
    }
}

#[tokio::test]
async fn untrusted_clients_and_redirect_uris_get_an_error_page_never_a_redirect() {
    let served = serve_with_sign_in().await;
    let good = with(
        &authorize_params(SCOPE, None),
        "login_hint",
        Some("developer"),
    );
    let cases: Vec<(&str, String, u32)> = vec![
        (
            "unknown client",
            authorize_url(
                &served.base_url,
                &with(
                    &good,
                    "client_id",
                    Some("44444444-5555-4666-8777-888888888888"),
                ),
            ),
            700016,
        ),
        (
            "redirect URI not registered",
            authorize_url(
                &served.base_url,
                &with(&good, "redirect_uri", Some("https://evil.example/callback")),
            ),
            50011,
        ),
        (
            "localhost is not 127.0.0.1",
            authorize_url(
                &served.base_url,
                &with(
                    &good,
                    "redirect_uri",
                    Some("http://localhost:4711/callback"),
                ),
            ),
            50011,
        ),
        (
            "another path",
            authorize_url(
                &served.base_url,
                &with(
                    &good,
                    "redirect_uri",
                    Some("http://127.0.0.1:4711/callback/x"),
                ),
            ),
            50011,
        ),
        (
            "no redirect URI",
            authorize_url(&served.base_url, &with(&good, "redirect_uri", None)),
            900144,
        ),
        (
            "no client",
            authorize_url(&served.base_url, &with(&good, "client_id", None)),
            900144,
        ),
        (
            "two redirect URIs",
            authorize_url(
                &served.base_url,
                &[
                    good.clone(),
                    vec![("redirect_uri", "https://evil.example/cb")],
                ]
                .concat(),
            ),
            9000411,
        ),
        (
            "other tenant",
            authorize_url(&served.base_url, &good)
                .replace(DEV_TENANT, "99999999-2222-4333-8444-555555555555"),
            90002,
        ),
        (
            "unknown user",
            authorize_url(
                &served.base_url,
                &with(&good, "login_hint", Some("mallory")),
            ),
            50034,
        ),
    ];
    for (name, url, code) in cases {
        let response = browser().get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{name}");
        assert!(response.headers().get("location").is_none(), "{name}");
        assert_page_headers(&response, name);
        let html = response.text().await.unwrap();
        assert!(html.contains(&format!("AADSTS{code}: ")), "{name}: {html}");
        assert!(!html.contains("evil.example/cb\""), "{name}");
    }
}

#[tokio::test]
async fn disabled_users_cannot_sign_in() {
    let served = serve_with_sign_in().await;
    served.issuer.set_user_enabled("developer", false).unwrap();
    let pairs = with(
        &authorize_params(SCOPE, None),
        "login_hint",
        Some("developer"),
    );
    let response = get(&served, &pairs).await;
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("AADSTS50057: "));
    served
        .issuer
        .set_user_enabled("dana.developer@contoso.dev", true)
        .unwrap();
    sign_in(&served, "developer", SCOPE, None, &[]).await;
}

#[track_caller]
fn assert_page_headers(response: &reqwest::Response, name: &str) {
    let header = |h: &str| {
        response
            .headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header("content-type").starts_with("text/html"), "{name}");
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{name}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{name}: {csp}");
    assert!(!csp.contains("script-src"), "{name}: {csp}");
    assert_eq!(header("x-frame-options"), "DENY", "{name}");
    assert_eq!(header("cache-control"), "no-store", "{name}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
}

/// What a browser keeps of the picker page: its form fields and cookie.
struct PickerForm {
    flow: String,
    csrf: String,
    cookie: String,
    html: String,
}

/// The value of `<input … name="{name}" value="…">`.
fn hidden_input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect(name) + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

async fn open_picker(served: &Served, pairs: &[(&str, &str)]) -> PickerForm {
    let response = get(served, pairs).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_page_headers(&response, "picker");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    // No `form-action`: it would govern every redirect after the post, and
    // the redirect URI redirects on to its own client.
    assert!(
        !csp.contains("form-action"),
        "the redirects after the post are allowed: {csp}"
    );
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        set_cookie.contains(&format!("Path=/{DEV_TENANT}/login")),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let html = response.text().await.unwrap();
    PickerForm {
        flow: hidden_input(&html, "flow"),
        csrf: hidden_input(&html, "csrf"),
        cookie,
        html,
    }
}

async fn post_login(
    served: &Served,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut request = browser()
        .post(format!("{}/{DEV_TENANT}/login", served.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn persona_picker_renders_escaped_and_its_form_signs_in() {
    let served = serve_with_sign_in().await;
    served
        .issuer
        .add_user(DevUser {
            name: "mallory".into(),
            user: "<script>alert(1)</script>@contoso.dev".into(),
            roles: vec!["<b>Owner</b>".into()],
            groups: vec!["\"><img src=x>".into()],
            mfa: true,
            disabled: false,
        })
        .unwrap();
    served.issuer.set_user_enabled("auditor", false).unwrap();
    let pkce = Pkce::new();
    let pairs = with(&authorize_params(SCOPE, Some(&pkce)), "nonce", Some("n-2"));
    let picker = open_picker(&served, &pairs).await;
    let html = &picker.html;
    for persona in ["developer", "security-manager", "auditor", "mallory"] {
        assert!(
            html.contains(&format!("name=\"persona\" value=\"{persona}\"")),
            "{persona} listed"
        );
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;@contoso.dev"));
    assert!(html.contains("&lt;b&gt;Owner&lt;/b&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x&gt;"));
    for raw in ["<script>", "<b>Owner", "<img"] {
        assert!(!html.contains(raw), "{raw} unescaped");
    }
    assert!(html.contains("signs in with MFA"));
    // The disabled account is shown, not selectable.
    assert!(html.contains("value=\"auditor\" disabled"), "{html}");
    assert!(html.contains(DEV_CONFIDENTIAL_CLIENT));
    assert!(html.contains("http://127.0.0.1:4711/callback"));
    assert_eq!(picker.flow.len(), 43);
    assert_eq!(picker.csrf.len(), 43);

    let fields = [
        ("flow", picker.flow.as_str()),
        ("csrf", picker.csrf.as_str()),
        ("persona", "security-manager"),
    ];
    let response = post_login(
        &served,
        &fields,
        Some(&picker.cookie),
        Some(&served.base_url),
    )
    .await;
    assert_eq!(response.status().as_u16(), 302);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (target, params) = location_params(&response);
    assert_eq!(target, "http://127.0.0.1:4711/callback");
    assert_eq!(params["state"], "xyz");
    let code = params["code"].as_str().unwrap();
    let (status, tokens) = redeem(&served, code, Some(&pkce), &[]).await;
    assert_eq!(status.as_u16(), 200, "{tokens}");
    let id = super::super::test_support::payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["preferred_username"], "sam.security@contoso.dev");
    assert_eq!(id["nonce"], "n-2");

    // The form posts once.
    let again = post_login(&served, &fields, Some(&picker.cookie), None).await;
    assert_eq!(again.status().as_u16(), 400);
    assert!(again.text().await.unwrap().contains("AADSTS50089: "));

    // A disabled account cannot be posted either.
    let picker = open_picker(&served, &pairs).await;
    let response = post_login(
        &served,
        &[
            ("flow", picker.flow.as_str()),
            ("csrf", picker.csrf.as_str()),
            ("persona", "auditor"),
        ],
        Some(&picker.cookie),
        None,
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("AADSTS50057: "));
}

#[tokio::test]
async fn picker_posts_without_the_csrf_token_are_refused() {
    let served = serve_with_sign_in().await;
    let picker = open_picker(&served, &authorize_params(SCOPE, None)).await;
    let flow = picker.flow.as_str();
    let csrf = picker.csrf.as_str();
    let forged = "x".repeat(43);
    let wrong_cookie = picker.cookie.replace(csrf, &forged);
    type Refusal<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let refusals: Vec<Refusal> = vec![
        (
            "no CSRF field",
            vec![("flow", flow), ("persona", "developer")],
            Some(&picker.cookie),
            None,
        ),
        (
            "no cookie",
            vec![("flow", flow), ("csrf", csrf), ("persona", "developer")],
            None,
            None,
        ),
        (
            "a cookie of another value",
            vec![("flow", flow), ("csrf", csrf), ("persona", "developer")],
            Some(&wrong_cookie),
            None,
        ),
        (
            "a forged token in both",
            vec![("flow", flow), ("csrf", &forged), ("persona", "developer")],
            Some(&wrong_cookie),
            None,
        ),
        (
            "another origin",
            vec![("flow", flow), ("csrf", csrf), ("persona", "developer")],
            Some(&picker.cookie),
            Some("https://evil.example"),
        ),
        (
            "an opaque origin",
            vec![("flow", flow), ("csrf", csrf), ("persona", "developer")],
            Some(&picker.cookie),
            Some("null"),
        ),
    ];
    for (name, fields, cookie, origin) in refusals {
        let response = post_login(&served, &fields, cookie, origin).await;
        assert_eq!(response.status().as_u16(), 403, "{name}");
        assert!(response.headers().get("location").is_none(), "{name}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("AADSTS50089: The sign-in form was refused"),
            "{name}: {html}"
        );
    }
    // None of them used up the flow.
    let response = post_login(
        &served,
        &[("flow", flow), ("csrf", csrf), ("persona", "developer")],
        Some(&picker.cookie),
        None,
    )
    .await;
    assert_eq!(response.status().as_u16(), 302);
    let (_, params) = location_params(&response);
    assert!(params["code"].is_string());
}

#[tokio::test]
async fn prompt_select_account_shows_the_picker_even_with_a_hint() {
    let served = serve_with_sign_in().await;
    let pairs = with(
        &with(
            &authorize_params(SCOPE, None),
            "login_hint",
            Some("auditor"),
        ),
        "prompt",
        Some("select_account"),
    );
    let picker = open_picker(&served, &pairs).await;
    // The hinted persona comes first, focused.
    let first = picker.html.find("name=\"persona\"").unwrap();
    assert!(
        picker.html[first..].starts_with("name=\"persona\" value=\"auditor\""),
        "{}",
        &picker.html[first..first + 60]
    );
    assert!(picker.html.contains("autofocus"));
    // `prompt=consent` and `none` with a hint sign in at once.
    for prompt in ["consent", "none"] {
        sign_in(&served, "auditor", SCOPE, None, &[("prompt", prompt)]).await;
    }
}
