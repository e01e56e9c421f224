//! Warden's OAuth facade and approvals page served by three replicas on one
//! PostgreSQL store, each in this process on its own port, behind an
//! imagined load balancer: all are configured with one public address (the
//! first replica's), and the tests send each request of a flow to the
//! replica they choose, as a load balancer might. The dev issuer plays
//! Entra ID over real HTTP; the "browser" follows no redirects and keeps
//! cookies by hand.
//!
//! Every step of a flow works on any replica; single-use things (codes,
//! refresh tokens, consent forms, Entra transactions, the page's sign-in
//! states) are used once across replicas however the requests race; a
//! revocation or a sign-out on one replica holds on the others at once
//! (each request reads the store).

mod common;

use common::facade::{
    Pkce, STEP_UP_CATALOG, STEP_UP_POLICIES, browser, encode, facade_keys, hidden, location, pkce,
    query, set_cookie,
};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::{DEV_AUDIENCE, DEV_SCOPE, DEV_TENANT, DevUser};
use warden::store::postgres::ScratchSchema;

const REDIRECT: &str = "http://127.0.0.1:43210/callback";
const SESSION: &str = "warden_admin";
const OIDC: &str = "warden_admin_oidc";
/// Rounds of each race.
const ROUNDS: usize = 8;

struct Cluster {
    issuer: Issuer,
    replicas: Vec<InProcess>,
    /// The address clients know (the load balancer's): the first replica's.
    public: String,
    http: reqwest::Client,
    schema: ScratchSchema,
    _keys: tempfile::TempDir,
}

fn user(name: &str, roles: &[&str]) -> DevUser {
    DevUser {
        name: name.into(),
        user: format!("{name}@contoso.dev"),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        groups: Vec::new(),
        mfa: true,
        disabled: false,
    }
}

impl Cluster {
    /// Three replicas with the facade on, one pepper and key ring, one
    /// public address, and `lifetimes` as `[oauth.lifetimes]`, in front of
    /// the demo upstream with the test policies.
    async fn start(lifetimes: &str) -> Cluster {
        Cluster::start_with(lifetimes, &demo_stdio("demo", "replicas"), None).await
    }

    /// Like [`Cluster::start`], with `upstreams` (and other tables) and
    /// the body of `[policy]`.
    async fn start_with(lifetimes: &str, upstreams: &str, policy: Option<&str>) -> Cluster {
        let schema = ScratchSchema::create(&replicas::postgres_admin())
            .expect("PostgreSQL at 127.0.0.1:5432");
        let issuer = Issuer::start().await;
        issuer.issuer.add_user(user("ada", &["Reader"])).unwrap();
        issuer
            .issuer
            .add_user(user("sam", &["SecurityManager"]))
            .unwrap();
        let mut bob = user("bob", &["Reader"]);
        bob.mfa = false;
        issuer.issuer.add_user(bob).unwrap();
        for callback in [
            "http://127.0.0.1/oauth/callback",
            "http://127.0.0.1/admin/callback",
        ] {
            issuer.issuer.allow_redirect(callback).unwrap();
        }
        let client = issuer.issuer.dev_client().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (pepper, kek) = facade_keys(keys.path());
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let public = format!("http://{}", listeners[0].local_addr().unwrap());
        let oauth = format!(
            "[approvals]\n\n[oauth]\nmode = \"facade\"\nissuer = {public:?}\nkey_file = {kek:?}\n\
             pepper_file = {pepper:?}\n\
             [oauth.entra]\ntenant = {DEV_TENANT:?}\nclient_id = {:?}\nscope = \"{DEV_AUDIENCE}/{DEV_SCOPE}\"\n\
             authority = {:?}\n\
             [oauth.entra.credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\n\
             client_id = {:?}\nsecret_file = {:?}\n\
             [oauth.lifetimes]\n{lifetimes}",
            client.client_id, issuer.base, client.client_id, client.secret_file,
        );
        let upstreams = format!("{upstreams}{oauth}");
        let identity = issuer.identity_toml();
        let url = schema.url();
        let mut replicas: Vec<InProcess> = Vec::new();
        for listener in listeners {
            let setup = Setup {
                server_extra: "",
                identity: &identity,
                upstreams: &upstreams,
                audit_extra: "",
                policy,
            };
            // One log: every replica signs with the first one's keys.
            let first = replicas.first().map(|r| r.dir.path());
            let dir = replicas::replica_dir(&setup, &url, first);
            replicas.push(InProcess::launch_dir(listener, dir));
        }
        Cluster {
            issuer,
            replicas,
            public,
            http: browser(),
            schema,
            _keys: keys,
        }
    }

    fn base(&self, replica: usize) -> String {
        self.replicas[replica].base()
    }

    /// `url` on the public address, as the load balancer hands it to
    /// `replica`.
    fn on(&self, replica: usize, url: &str) -> String {
        assert!(url.starts_with(&self.public), "{url}");
        url.replacen(&self.public, &self.base(replica), 1)
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.public)
    }

    async fn register(&self, replica: usize) -> String {
        let response = self
            .http
            .post(format!("{}/register", self.base(replica)))
            .json(&json!({"client_name": "Replica test client", "redirect_uris": [REDIRECT]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// `/authorize` on `at[0]`, the consent page's answer on `at[1]`,
    /// Entra: Entra's callback (on the public address) and the browser's
    /// cookie.
    async fn to_callback(&self, client_id: &str, pkce: &Pkce, at: [usize; 2]) -> (String, String) {
        let (page, csrf_cookie) = self.consent_page(client_id, pkce, at[0]).await;
        let decided = self.decide(&page, &csrf_cookie, at[1]).await;
        assert_eq!(decided.status(), 302);
        let browser = set_cookie(&decided, "warden_oauth_browser").expect("browser cookie");
        let entra = location(&decided);
        assert!(entra.starts_with(&self.issuer.base), "{entra}");
        let signed = self
            .http
            .get(format!("{entra}&login_hint=ada@contoso.dev"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        (location(&signed), browser)
    }

    /// The consent page from `/authorize` on `replica`, and its CSRF cookie.
    async fn consent_page(&self, client_id: &str, pkce: &Pkce, replica: usize) -> (String, String) {
        let authorize = format!(
            "{}/authorize?{}",
            self.base(replica),
            encode(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("state", "client-state"),
                ("resource", &self.resource()),
            ])
        );
        let consent = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(consent.status(), 200);
        let csrf_cookie = set_cookie(&consent, "warden_oauth_csrf").expect("csrf cookie");
        (consent.text().await.unwrap(), csrf_cookie)
    }

    /// Approves the consent `page` on `replica`.
    async fn decide(&self, page: &str, csrf_cookie: &str, replica: usize) -> reqwest::Response {
        self.http
            .post(format!("{}/authorize/decision", self.base(replica)))
            .header("cookie", csrf_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[
                ("consent", hidden(page, "consent")),
                ("csrf", hidden(page, "csrf")),
                ("decision", "approve".into()),
            ]))
            .send()
            .await
            .unwrap()
    }

    /// Entra's `callback` handed to `replica` with `browser`'s cookie.
    async fn callback(&self, callback: &str, browser: &str, replica: usize) -> reqwest::Response {
        self.http
            .get(self.on(replica, callback))
            .header("cookie", browser)
            .send()
            .await
            .unwrap()
    }

    /// A sign-in whose steps run on `at` (authorize, consent, callback):
    /// Warden's code.
    async fn code(&self, client_id: &str, pkce: &Pkce, at: [usize; 3]) -> String {
        let (callback, browser) = self.to_callback(client_id, pkce, [at[0], at[1]]).await;
        let back = self.callback(&callback, &browser, at[2]).await;
        assert_eq!(back.status(), 302);
        let to_client = location(&back);
        assert!(to_client.starts_with(REDIRECT), "{to_client}");
        let answer = query(&to_client);
        assert_eq!(answer["state"], "client-state");
        assert_eq!(answer["iss"], self.public);
        answer["code"].clone()
    }

    fn redeem_form(&self, client_id: &str, code: &str, pkce: &Pkce) -> Vec<(String, String)> {
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", pkce.verifier.as_str()),
            ("resource", &self.resource()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn refresh_form(client_id: &str, refresh: &str) -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh.into()),
            ("client_id".into(), client_id.into()),
        ]
    }

    /// `/token` on `replica`.
    async fn token(&self, replica: usize, form: &[(String, String)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base(replica)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A whole sign-in, each step on another replica, and its tokens
    /// (redeemed on `redeem_on`).
    async fn signed_in(&self, client_id: &str, redeem_on: usize) -> Value {
        let pkce = pkce();
        let code = self.code(client_id, &pkce, [0, 1, 2]).await;
        let (status, tokens) = self
            .token(redeem_on, &self.redeem_form(client_id, &code, &pkce))
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// The status of an MCP `initialize` with `access` on `replica` (200:
    /// the token is accepted; 401: refused).
    async fn mcp_status(&self, replica: usize, access: &str) -> u16 {
        self.http
            .post(format!("{}/mcp", self.base(replica)))
            .bearer_auth(access)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "probe", "version": "1"}}
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The approvals page's Entra sign-in started on `start` (the button),
    /// and Entra's answer: the callback (public address) and the binding
    /// cookie.
    async fn page_to_entra_and_back(&self, start: usize) -> (String, String) {
        let started = self
            .http
            .get(format!("{}/admin/sign-in/entra", self.base(start)))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 303);
        let oidc = set_cookie(&started, OIDC).expect("the binding cookie");
        let entra = location(&started);
        let signed = self
            .http
            .get(format!("{entra}&login_hint=sam@contoso.dev"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        (location(&signed), oidc)
    }

    /// `/admin/` on `replica` with `session`: its body.
    async fn admin_home(&self, replica: usize, session: &str) -> String {
        let page = self
            .http
            .get(format!("{}/admin/", self.base(replica)))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        page.text().await.unwrap()
    }

    fn auth_events(&self, event: &str) -> usize {
        let url = self.schema.url();
        let reader = warden::store::Reader::open(warden::store::Location::Postgres(url)).unwrap();
        let mut count = 0;
        reader
            .records_of_kind("auth", |bytes| {
                let record: Value = serde_json::from_slice(bytes).unwrap();
                if record["details"]["event"] == event {
                    count += 1;
                }
                Ok(())
            })
            .unwrap();
        count
    }
}

/// Two replicas' answers to one code or refresh token used on both at once:
/// exactly one used it, and the other's use was its reuse (`reuse` begins
/// its error), which revokes the grant. The first answered with tokens
/// (returned), or, when the reuse's revocation landed before it issued
/// them, with `invalid_grant` for the revoked grant.
fn one_use(round: usize, a: &(u16, Value), b: &(u16, Value), reuse: &str) -> Option<Value> {
    let is_reuse = |(status, body): &(u16, Value)| {
        *status == 400
            && body["error"] == "invalid_grant"
            && body["error_description"]
                .as_str()
                .is_some_and(|d| d.starts_with(reuse))
    };
    assert_eq!(
        [a, b].into_iter().filter(|r| is_reuse(r)).count(),
        1,
        "round {round}: exactly one reuse: {a:?} {b:?}"
    );
    let user = if is_reuse(a) { b } else { a };
    match user.0 {
        200 => Some(user.1.clone()),
        _ => {
            assert_eq!(user.1["error"], "invalid_grant", "round {round}: {user:?}");
            let why = user.1["error_description"].as_str().unwrap_or_default();
            assert!(
                why.starts_with("the grant was revoked"),
                "round {round}: {why}"
            );
            None
        }
    }
}

#[tokio::test]
async fn each_step_of_a_sign_in_runs_on_another_replica() {
    let c = Cluster::start("").await;
    let client_id = c.register(2).await;
    let pkce = pkce();
    // Authorize on 0, consent on 1, Entra's callback on 2, the code
    // redeemed on 1, and the MCP call on 2.
    let code = c.code(&client_id, &pkce, [0, 1, 2]).await;
    assert!(code.starts_with("wdn_code_"));
    let (status, tokens) = c.token(1, &c.redeem_form(&client_id, &code, &pkce)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (client, _) = connect_as(&c.replicas[2].url(), Some(&access)).await;
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    assert!(
        who.contains("tag=replicas") && !who.contains("wdn_at_"),
        "the call reached the upstream, without the token: {who}"
    );
    for replica in 0..3 {
        assert_eq!(c.mcp_status(replica, &access).await, 200, "{replica}");
    }

    // Refresh on 0, then with its successor on 2; the old one again on 1
    // is a reuse (its successor was used): the grant is revoked everywhere.
    let (status, rotated) = c
        .token(0, &Cluster::refresh_form(&client_id, &refresh))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let newer = rotated["refresh_token"].as_str().unwrap().to_owned();
    let newer_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(c.mcp_status(1, &newer_access).await, 200);
    let (status, again) = c.token(2, &Cluster::refresh_form(&client_id, &newer)).await;
    assert_eq!(status, 200, "{again}");
    let newest_access = again["access_token"].as_str().unwrap().to_owned();
    let (status, reused) = c
        .token(1, &Cluster::refresh_form(&client_id, &refresh))
        .await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for replica in 0..3 {
        assert_eq!(
            c.mcp_status(replica, &newest_access).await,
            401,
            "{replica}"
        );
    }
    // One MCP session's replica sees it too.
    assert!(call(&client, "whoami", json!({})).await.is_err());
}

#[tokio::test]
async fn a_code_raced_on_two_replicas_is_redeemed_once_and_its_reuse_revokes_the_grant() {
    let c = Cluster::start("").await;
    let client_id = c.register(0).await;
    let mut issued = 0;
    for round in 0..ROUNDS {
        let pkce = pkce();
        let code = c
            .code(
                &client_id,
                &pkce,
                [round % 3, (round + 1) % 3, (round + 2) % 3],
            )
            .await;
        let form = c.redeem_form(&client_id, &code, &pkce);
        let (a, b) = tokio::join!(c.token(0, &form), c.token(1, &form));
        if let Some(tokens) = one_use(round, &a, &b, "the code was already used") {
            issued += 1;
            // The second use revoked the grant the first one made.
            let access = tokens["access_token"].as_str().unwrap();
            assert_eq!(c.mcp_status(2, access).await, 401, "round {round}");
        }
        // A replay on the third replica is refused too.
        let (status, replayed) = c.token(2, &form).await;
        assert_eq!(
            (status, replayed["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert_eq!(c.auth_events("token_issued"), issued);
}

#[tokio::test]
async fn a_refresh_token_raced_on_two_replicas_rotates_once() {
    // No grace: the loser of each race is a reuse, by the rules, and ends
    // the grant.
    let c = Cluster::start("refresh_reuse_grace = \"0s\"\n").await;
    let client_id = c.register(1).await;
    let mut refreshed = 0;
    for round in 0..ROUNDS {
        let tokens = c.signed_in(&client_id, round % 3).await;
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let form = Cluster::refresh_form(&client_id, refresh);
        let (a, b) = tokio::join!(c.token(0, &form), c.token(1, &form));
        let Some(rotated) = one_use(round, &a, &b, "the refresh token was already used") else {
            continue;
        };
        refreshed += 1;
        // The reuse revoked the grant: the winner's new tokens are refused.
        let access = rotated["access_token"].as_str().unwrap();
        assert_eq!(c.mcp_status(2, access).await, 401, "round {round}");
        let next = rotated["refresh_token"].as_str().unwrap();
        let (status, _) = c.token(2, &Cluster::refresh_form(&client_id, next)).await;
        assert_eq!(status, 400, "round {round}");
    }
    assert_eq!(c.auth_events("token_refreshed"), refreshed);
}

#[tokio::test]
async fn a_refresh_token_lost_in_flight_is_honoured_on_another_replica_within_the_grace() {
    let c = Cluster::start("").await;
    let client_id = c.register(0).await;
    let tokens = c.signed_in(&client_id, 0).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = Cluster::refresh_form(&client_id, refresh);
    let (status, first) = c.token(1, &form).await;
    assert_eq!(status, 200, "{first}");
    // The client lost that answer and retries on another replica: its
    // successor is unused, so it is honoured.
    let (status, retried) = c.token(2, &form).await;
    assert_eq!(status, 200, "{retried}");
    let access = retried["access_token"].as_str().unwrap();
    assert_eq!(c.mcp_status(0, access).await, 200);
}

#[tokio::test]
async fn a_revocation_on_one_replica_holds_on_the_others_at_once() {
    let c = Cluster::start("").await;
    let client_id = c.register(0).await;
    let tokens = c.signed_in(&client_id, 1).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    for replica in 0..3 {
        assert_eq!(c.mcp_status(replica, access).await, 200);
    }
    let revoked = c
        .http
        .post(format!("{}/revoke", c.base(0)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("token", refresh),
            ("client_id", client_id.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // Each request reads the store: no delay to wait out.
    for replica in 0..3 {
        assert_eq!(c.mcp_status(replica, access).await, 401, "{replica}");
    }
    let (status, refused) = c
        .token(2, &Cluster::refresh_form(&client_id, refresh))
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(c.auth_events("revoked"), 1);
}

#[tokio::test]
async fn consent_forms_and_entra_states_are_used_once_across_replicas() {
    let c = Cluster::start("").await;
    let client_id = c.register(0).await;
    let pkce = pkce();

    // A consent form answered on two replicas at once: one goes on to Entra.
    let (page, csrf_cookie) = c.consent_page(&client_id, &pkce, 0).await;
    let (a, b) = tokio::join!(
        c.decide(&page, &csrf_cookie, 1),
        c.decide(&page, &csrf_cookie, 2)
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        1,
        "{statuses:?}"
    );
    // Answered again later, anywhere: refused.
    let again = c.decide(&page, &csrf_cookie, 0).await;
    assert_ne!(again.status(), 302);
    // A wrong CSRF token does not take the form from its browser.
    let (page, csrf_cookie) = c.consent_page(&client_id, &pkce, 1).await;
    let forged = c
        .http
        .post(format!("{}/authorize/decision", c.base(2)))
        .header("cookie", &csrf_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("consent", hidden(&page, "consent")),
            ("csrf", "forged".into()),
            ("decision", "approve".into()),
        ]))
        .send()
        .await
        .unwrap();
    assert_ne!(forged.status(), 302);
    assert_eq!(c.decide(&page, &csrf_cookie, 0).await.status(), 302);

    // Entra's answer delivered to two replicas at once: one code.
    let (callback, browser) = c.to_callback(&client_id, &pkce, [2, 0]).await;
    let (a, b) = tokio::join!(
        c.callback(&callback, &browser, 1),
        c.callback(&callback, &browser, 2)
    );
    let codes: Vec<String> = [&a, &b]
        .iter()
        .filter(|r| r.status() == 302)
        .map(|r| location(r))
        .filter(|to| to.starts_with(REDIRECT) && query(to).contains_key("code"))
        .collect();
    assert_eq!(codes.len(), 1, "{:?} {:?}", a.status(), b.status());
    // Replayed later on the third: refused, no code.
    let replayed = c.callback(&callback, &browser, 0).await;
    assert_ne!(replayed.status(), 302);
    // The code works once, on any replica.
    let code = query(&codes[0])["code"].clone();
    let (status, _) = c.token(0, &c.redeem_form(&client_id, &code, &pkce)).await;
    assert_eq!(status, 200);

    // Entra's answer from another browser is refused, and its transaction
    // is gone for the right browser too.
    let (callback, browser) = c.to_callback(&client_id, &pkce, [1, 1]).await;
    let stranger = c
        .callback(&callback, "warden_oauth_browser=stranger", 2)
        .await;
    assert_ne!(stranger.status(), 302);
    let late = c.callback(&callback, &browser, 0).await;
    assert_ne!(late.status(), 302);
}

#[tokio::test]
async fn a_page_session_from_one_replica_works_on_the_others_and_ends_on_all() {
    let c = Cluster::start("").await;
    // Sign-in started on 0, Entra's answer handed to 1.
    let (callback, oidc) = c.page_to_entra_and_back(0).await;
    let done = c
        .http
        .get(c.on(1, &callback))
        .header("cookie", &oidc)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let session = set_cookie(&done, SESSION).expect("a session cookie");
    // The same state again, on 2: refused (taken once).
    let replayed = c
        .http
        .get(c.on(2, &callback))
        .header("cookie", &oidc)
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&replayed, SESSION).is_none());
    // The session works on every replica.
    let mut csrf = String::new();
    for replica in [2, 0, 1] {
        let home = c.admin_home(replica, &session).await;
        assert!(home.contains("sam@contoso.dev"), "{replica}: {home}");
        csrf = hidden(&home, "csrf");
    }
    // Signing out on 1 ends it on 0 and 2 at once.
    let out = c
        .http
        .post(format!("{}/admin/sign-out", c.base(1)))
        .header("cookie", &session)
        .header("origin", c.base(1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    for replica in [0, 2, 1] {
        let home = c
            .http
            .get(format!("{}/admin/", c.base(replica)))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains(r#"action="/admin/sign-in""#) && !home.contains("sam@contoso.dev"),
            "{replica}: signed out: {home}"
        );
    }

    // Entra's answer for one sign-in raced on two replicas: one session.
    let (callback, oidc) = c.page_to_entra_and_back(2).await;
    let (a, b) = tokio::join!(
        c.http
            .get(c.on(0, &callback))
            .header("cookie", &oidc)
            .send(),
        c.http
            .get(c.on(1, &callback))
            .header("cookie", &oidc)
            .send()
    );
    let sessions = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| set_cookie(r, SESSION).is_some())
        .count();
    assert_eq!(sessions, 1);
}

/// A JSON-RPC request on an MCP session of `replica`: status and body.
async fn mcp(
    c: &Cluster,
    replica: usize,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, String) {
    let mut request = c
        .http
        .post(format!("{}/mcp", c.base(replica)))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, id, response.text().await.unwrap())
}

#[tokio::test]
async fn a_step_up_asked_on_one_replica_is_taken_once_and_answered_on_others() {
    let scratch = tempfile::tempdir().unwrap();
    let catalog = scratch.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("demo.toml"), STEP_UP_CATALOG).unwrap();
    let policies = scratch.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("step-up.cedar"), STEP_UP_POLICIES).unwrap();
    let upstreams = format!(
        "[catalog]\ndir = {catalog:?}\n[upstreams.demo]\ncommand = {:?}\n",
        example("demo_upstream").display().to_string()
    );
    let policy = format!("dir = {policies:?}\n");
    let c = Cluster::start_with("", &upstreams, Some(&policy)).await;
    let client_id = c.register(0).await;

    // Bob signs in without MFA (authorize on 0, consent on 1, callback on
    // 2, the code redeemed on 0) and opens an MCP session on 0.
    let weak_pkce = pkce();
    let (callback, browser) = {
        let (page, csrf) = c.consent_page(&client_id, &weak_pkce, 0).await;
        let decided = c.decide(&page, &csrf, 1).await;
        let browser = set_cookie(&decided, "warden_oauth_browser").unwrap();
        let signed = c
            .http
            .get(format!("{}&login_hint=bob@contoso.dev", location(&decided)))
            .send()
            .await
            .unwrap();
        (location(&signed), browser)
    };
    let back = c.callback(&callback, &browser, 2).await;
    let code = query(&location(&back))["code"].clone();
    let (status, tokens) = c
        .token(0, &c.redeem_form(&client_id, &code, &weak_pkce))
        .await;
    assert_eq!(status, 200, "{tokens}");
    let weak = tokens["access_token"].as_str().unwrap().to_owned();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "step-up test", "version": "1"}}});
    let (status, session, _) = mcp(&c, 0, &weak, None, initialize.clone()).await;
    assert_eq!(status, 200);
    let session = session.expect("a session id");
    let (status, _, _) = mcp(
        &c,
        0,
        &weak,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    let echo = |text: &str, id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo",
            "arguments": {"text": text, "subscription": "00000000-0000-4000-8000-000000000001",
                          "resource-group": "dev-web", "vm": "vm1"}}})
    };

    // Policy wants MFA on 0: the grant is marked.
    let (status, _, denied) = mcp(&c, 0, &weak, Some(&session), echo("no-mfa", 2)).await;
    assert_eq!(status, 200);
    assert!(denied.contains("sign in again with MFA"), "{denied}");
    // The next request, on 1, gets the step-up challenge; on 2, the mark
    // is already taken.
    let (status, _, _) = mcp(&c, 1, &weak, None, initialize.clone()).await;
    assert_eq!(status, 403);
    let (status, _, _) = mcp(&c, 2, &weak, None, initialize.clone()).await;
    assert_eq!(status, 200, "one 403 per step-up, across replicas");

    // The client authorizes again with the step-up scope: the remembered
    // consent (kept by 2) is found on 1, and Entra's answer goes to 0,
    // which steps the grant marked by 0 and taken by 1 up in place.
    let pkce = pkce();
    let authorize = format!(
        "{}/authorize?{}",
        c.base(1),
        encode(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("resource", &c.resource()),
            ("scope", "mcp mfa offline_access"),
        ])
    );
    let asked = c
        .http
        .get(&authorize)
        .header("cookie", &browser)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 302, "a remembered consent goes to Entra");
    let entra = location(&asked);
    assert!(query(&entra).contains_key("claims"), "{entra}");
    let signed = c
        .http
        .get(format!("{entra}&login_hint=bob@contoso.dev"))
        .send()
        .await
        .unwrap();
    let back = c.callback(&location(&signed), &browser, 0).await;
    let code = query(&location(&back))["code"].clone();
    let (status, stepped) = c.token(2, &c.redeem_form(&client_id, &code, &pkce)).await;
    assert_eq!(status, 200, "{stepped}");
    assert_eq!(stepped["scope"], "mcp mfa");
    let strong = stepped["access_token"].as_str().unwrap().to_owned();
    let grant_of = |token: &str| {
        token
            .split('.')
            .next()
            .unwrap()
            .rsplit('_')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(grant_of(&strong), grant_of(&weak), "the same grant");
    // The weaker sign-in's token is refused everywhere (issued by 0, it was
    // forgotten only there); the retry runs on the same session.
    for replica in 0..3 {
        assert_eq!(c.mcp_status(replica, &weak).await, 401, "{replica}");
    }
    let (status, _, allowed) = mcp(&c, 0, &strong, Some(&session), echo("with-mfa", 3)).await;
    assert_eq!(status, 200);
    assert!(
        allowed.contains("with-mfa") && !allowed.contains("\"isError\":true"),
        "{allowed}"
    );
}
