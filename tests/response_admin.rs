//! The security manager's side of automatic responses, end to end over
//! real HTTP against a real Warden (the baseline policies and response
//! rules, the demo upstream, dev tokens, a SQLite store): a principal's
//! burst of deletes reaches the mass-deletion rule, which suspends it and
//! opens an incident; the admin API lists the incident with the triggering
//! call's records; the suspended principal is refused; who may read and
//! act is checked (auditors read, plain users do not, acting needs the
//! approver role and MFA, and a reason or note; on the approvals page an
//! auditor gets no forms and a forged post changes nothing, and a form from
//! another site or without the session's CSRF token is refused); a
//! security manager lifts the suspension, and acknowledges and closes the
//! incident; the records tell all of it; and `warden response`, a separate
//! process, lists and lifts through the same API.

mod common;
#[path = "common/suspension.rs"]
mod suspension;

use common::*;
use serde_json::{Value, json};
use suspension::{Responding, SUSPENDED, delete_until_suspended, read};

/// One admin API call: status and body.
async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}/admin/api/{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `warden response ARGS` against `base` as `token`: exit code, stdout,
/// stderr.
fn cli(base: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("response")
        .args(args)
        .env("WARDEN_URL", base)
        .env("WARDEN_TOKEN", token)
        .output()
        .expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A session on the approvals page, signed in with a pasted token: its
/// cookie and CSRF token.
struct PageSession {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name}"))
        .to_owned()
}

impl PageSession {
    async fn sign_in(base: &str, token: &str) -> PageSession {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http.get(format!("{base}/admin/")).send().await.unwrap();
        let sign_in = set_cookie(&form, "warden_admin_signin");
        let signed = http
            .post(format!("{base}/admin/sign-in"))
            .header("Cookie", format!("warden_admin_signin={sign_in}"))
            .header("Origin", base)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::facade::encode(&[
                ("token", token),
                ("csrf", sign_in.as_str()),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303);
        let mut session = PageSession {
            base: base.to_owned(),
            http,
            cookie: format!("warden_admin={}", set_cookie(&signed, "warden_admin")),
            csrf: String::new(),
        };
        let page = session.page().await;
        let start = page.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
        session.csrf = page[start..].split('"').next().unwrap().to_owned();
        session
    }

    /// `/admin/` as this session sees it.
    async fn page(&self) -> String {
        let response = self
            .http
            .get(format!("{}/admin/", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Posts a form to `path` from `origin` with `fields` and the session's
    /// CSRF token (or a forged one): status and `Location`.
    async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        origin: &str,
        csrf: bool,
    ) -> (u16, String) {
        let token = if csrf { self.csrf.as_str() } else { "forged" };
        let mut form = fields.to_vec();
        form.push(("csrf", token));
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("Origin", origin)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(common::facade::encode(&form))
            .send()
            .await
            .unwrap();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), location)
    }
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_and_its_incident_are_listed_lifted_acknowledged_and_closed() {
    let warden = Responding::start("").await;
    let gate = &warden.gate;
    let base = gate.warden.base();
    let db = gate.warden.db();
    let sam = gate.token("sam", &["SecurityManager"], true);
    let sam_without_mfa = gate.token("sam", &["SecurityManager"], false);
    let audrey = gate.token("audrey", &["Auditor"], false);
    let dan = gate.token("dan", &["Contributor"], true);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // Carol deletes VM after VM until the mass-deletion rule suspends her.
    let carol = warden.contributor("carol").await;
    let burst = delete_until_suspended(&carol, "vm", 30).await;
    assert!(burst.deleted.len() >= 3, "{:?}", burst.deleted);
    assert_eq!(gate.received(), burst.deleted, "the refused call never ran");
    for part in [
        "carol",
        "rule mass-deletion",
        "incident INC-",
        "lifts the suspension",
    ] {
        assert!(burst.refusal.contains(part), "{part}: {}", burst.refusal);
    }

    // The incident, with the triggering call's intent and outcome records.
    let (status, listed) = api(&base, &sam, get.clone(), "incidents", None).await;
    assert_eq!(status, 200, "{listed}");
    let incidents = listed["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{listed:#}");
    let incident = &incidents[0];
    let id = incident["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("INC-"), "{id}");
    assert!(burst.refusal.contains(&id), "{}", burst.refusal);
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["rule"], "mass-deletion");
    assert_eq!(incident["principal"]["name"], "carol");
    let call = &incident["calls"][0];
    let call_id = call["call_id"].as_str().unwrap();
    assert_eq!(call["tool"], "echo");
    assert_eq!(
        call["operations"],
        json!(["Microsoft.Compute/virtualMachines/delete"])
    );
    let records = wait_for_records(&db, |all| {
        all.iter()
            .any(|r| r["kind"] == "outcome" && r["call_id"] == call_id)
    })
    .await;
    let seq_of = |kind: &str| {
        records
            .iter()
            .find(|r| r["kind"] == kind && r["call_id"] == call_id)
            .unwrap_or_else(|| panic!("no {kind} of {call_id}"))["seq"]
            .clone()
    };
    assert_eq!(
        call["seqs"],
        json!([seq_of("intent"), seq_of("outcome")]),
        "{incident:#}"
    );
    let suspend = incident["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "suspend")
        .unwrap_or_else(|| panic!("no suspend among {incident:#}"));
    assert_eq!(suspend["result"], "done");
    assert_eq!(suspend["mode"], "enforce");
    let suspended_by = records
        .iter()
        .find(|r| r["seq"] == suspend["seq"])
        .expect("the suspension's record");
    assert_eq!(suspended_by["kind"], "response");
    assert_eq!(suspended_by["details"]["action"], "suspend");
    assert_eq!(suspended_by["details"]["incident_id"], id.as_str());
    // One incident by id; filters; unknown ids.
    let (status, one) = api(&base, &sam, get.clone(), &format!("incidents/{id}"), None).await;
    assert_eq!((status, &one["id"]), (200, &json!(id)));
    let (_, open) = api(&base, &sam, get.clone(), "incidents?status=open", None).await;
    assert_eq!(open["incidents"].as_array().unwrap().len(), 1);
    let (_, closed) = api(&base, &sam, get.clone(), "incidents?status=closed", None).await;
    assert_eq!(closed["incidents"], json!([]));
    let (status, body) = api(&base, &sam, get.clone(), "incidents?status=pending", None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        message(&body).contains("open, acknowledged or closed"),
        "{body}"
    );
    let (status, body) = api(&base, &sam, get.clone(), "incidents/INC-nothing", None).await;
    assert_eq!(status, 404, "{body}");

    // The suspension; Carol's next call is refused, a read too.
    let (status, body) = api(&base, &sam, get.clone(), "suspensions", None).await;
    assert_eq!(status, 200);
    let suspensions = body["suspensions"].as_array().unwrap();
    assert_eq!(suspensions.len(), 1, "{body:#}");
    assert_eq!(suspensions[0]["name"], "carol");
    assert_eq!(suspensions[0]["incident_id"], id.as_str());
    let carol_key = format!(
        "{}/{}",
        suspensions[0]["tid"].as_str().unwrap(),
        suspensions[0]["oid"].as_str().unwrap()
    );
    let refused = common::call(&carol, "add", read("vm-01")).await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains(SUSPENDED), "{}", text(&refused));
    assert_eq!(gate.received(), burst.deleted);

    // Who may read: security managers and auditors, not others.
    let (status, _) = api(&base, &audrey, get.clone(), "incidents", None).await;
    assert_eq!(status, 200);
    let (status, body) = api(&base, &dan, get.clone(), "suspensions", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("SecurityManager"), "{body}");
    let (status, body) = api(&base, &dan, get.clone(), "blocks", None).await;
    assert_eq!(status, 403, "{body}");

    // Who may lift: not a non-manager, not an auditor, not without MFA;
    // and never without a reason.
    let lift = |reason: &str| json!({ "principal": carol_key, "reason": reason });
    for (token, expected) in [
        (&dan, "needs the app role SecurityManager"),
        (&audrey, "needs the app role SecurityManager"),
        (&sam_without_mfa, "multi-factor"),
    ] {
        let (status, body) = api(
            &base,
            token,
            post.clone(),
            "suspensions/lift",
            Some(lift("ok")),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(message(&body).contains(expected), "{body}");
    }
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "suspensions/lift",
        Some(lift(" ")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
    assert!(message(&body).contains("a reason is required"), "{body}");
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "suspensions/lift",
        Some(json!({ "principal": "carol", "reason": "x" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("tid/oid"), "{body}");

    // On the page: an auditor sees the incident and the suspension but no
    // form, and a forged post changes nothing; a form from another site or
    // without the session's CSRF token is refused.
    let auditor_page = PageSession::sign_in(&base, &audrey).await;
    let html = auditor_page.page().await;
    assert!(html.contains(&format!(r#"id="{id}""#)), "{html}");
    assert!(html.contains("Suspended: carol"), "{html}");
    assert!(!html.contains("/admin/suspensions/lift"), "{html}");
    let fields = [("principal", carol_key.as_str()), ("reason", "ok")];
    let (status, location) = auditor_page
        .post("/admin/suspensions/lift", &fields, &base, true)
        .await;
    assert_eq!((status, location.as_str()), (303, "/admin/#suspensions"));
    assert!(
        auditor_page
            .page()
            .await
            .contains("Could not lift the suspension of"),
        "the refusal is shown"
    );
    let sam_page = PageSession::sign_in(&base, &sam).await;
    assert!(sam_page.page().await.contains("/admin/suspensions/lift"));
    let (status, _) = sam_page
        .post("/admin/suspensions/lift", &fields, &base, false)
        .await;
    assert_eq!(status, 403, "without the session's CSRF token");
    let (status, _) = sam_page
        .post(
            "/admin/suspensions/lift",
            &fields,
            "https://elsewhere.example",
            true,
        )
        .await;
    assert_eq!(status, 403, "from another site");
    let (status, _) = sam_page
        .post(
            &format!("/admin/incidents/{id}/close"),
            &[("note", "x")],
            &base,
            false,
        )
        .await;
    assert_eq!(status, 403);
    let refused = common::call(&carol, "add", read("vm-01")).await.unwrap();
    assert!(
        text(&refused).contains(SUSPENDED),
        "still suspended: {}",
        text(&refused)
    );
    let (_, body) = api(&base, &sam, get.clone(), &format!("incidents/{id}"), None).await;
    assert_eq!(body["status"], "open");

    // A security manager lifts it with a reason: Carol's next call runs.
    let reason = "Carol cleaned up a test environment; confirmed with her lead";
    let (status, lifted) = api(
        &base,
        &sam,
        post.clone(),
        "suspensions/lift",
        Some(lift(reason)),
    )
    .await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["lifted"]["name"], "sam");
    assert_eq!(lifted["lifted"]["note"], reason);
    let sam_key = lifted["lifted"]["by"].as_str().unwrap().to_owned();
    assert!(sam_key.contains('/') && sam_key != carol_key, "{lifted}");
    let ran = common::call(&carol, "add", read("vm-01")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    let (_, body) = api(&base, &sam, get.clone(), "suspensions", None).await;
    assert_eq!(body["suspensions"], json!([]));
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "suspensions/lift",
        Some(lift(reason)),
    )
    .await;
    assert_eq!(status, 409, "lifting twice: {body}");
    assert!(message(&body).contains("is not suspended"), "{body}");

    // The incident: a note is required; acknowledged, then closed; once.
    let path = |action: &str| format!("incidents/{id}/{action}");
    let note = |text: &str| Some(json!({ "note": text }));
    let (status, body) = api(&base, &sam, post.clone(), &path("acknowledge"), note("")).await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("a note is required"), "{body}");
    let (status, body) = api(&base, &audrey, post.clone(), &path("close"), note("x")).await;
    assert_eq!(status, 403, "{body}");
    let (status, acked) = api(
        &base,
        &sam,
        post.clone(),
        &path("acknowledge"),
        note("Looking into it"),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged"]["by"], sam_key.as_str());
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        &path("acknowledge"),
        note("again"),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let closing = "Legitimate cleanup of a test environment";
    let (status, closed) = api(&base, &sam, post.clone(), &path("close"), note(closing)).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["closed"]["note"], closing);
    let (status, body) = api(&base, &sam, post.clone(), &path("close"), note("twice")).await;
    assert_eq!(status, 409, "closing twice: {body}");
    assert!(message(&body).contains("already closed"), "{body}");
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "incidents/INC-nothing/close",
        note("x"),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Blocks: none here; a malformed network is named, an unblocked one not found.
    let (status, body) = api(&base, &audrey, get.clone(), "blocks", None).await;
    assert_eq!((status, &body["blocks"]), (200, &json!([])));
    let unblock = |network: &str| Some(json!({ "network": network, "reason": "test" }));
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "blocks/unblock",
        unblock("not-a-net"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("not-a-net"), "{body}");
    let (status, body) = api(
        &base,
        &sam,
        post.clone(),
        "blocks/unblock",
        unblock("192.0.2.7/32"),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // The records tell it: the lift (who, why, which suspension), the
    // incident acknowledged and closed with their notes.
    let records = wait_for_records(&db, |all| {
        all.iter()
            .any(|r| r["kind"] == "incident" && r["details"]["event"] == "closed")
    })
    .await;
    let lift_record = records
        .iter()
        .find(|r| r["kind"] == "response" && r["details"]["action"] == "lift")
        .expect("a response record of the lift");
    assert_eq!(lift_record["details"]["target"], carol_key.as_str());
    assert_eq!(lift_record["details"]["by"], sam_key.as_str());
    assert_eq!(lift_record["details"]["reason"], reason);
    assert_eq!(lift_record["principal"]["name"], "carol");
    let events: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["kind"] == "incident" && r["details"]["incident_id"] == id.as_str())
        .map(|r| {
            (
                r["details"]["event"].as_str().unwrap(),
                r["details"]["note"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("opened", ""),
            ("acknowledged", "Looking into it"),
            ("closed", closing)
        ]
    );

    // Carol deletes again, is suspended again (a new incident), and the
    // CLI, a separate process, lists and lifts through the same API.
    let again = delete_until_suspended(&carol, "again", 30).await;
    assert!(again.refusal.contains(SUSPENDED), "{}", again.refusal);
    let (code, out, err) = cli(&base, &sam, &["incidents", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("--json prints JSON");
    let listed = listed["incidents"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{out}");
    let second = listed
        .iter()
        .find(|i| i["status"] == "open")
        .expect("the new incident");
    let second_id = second["id"].as_str().unwrap();
    assert!(again.refusal.contains(second_id), "{}", again.refusal);
    assert!(
        listed
            .iter()
            .any(|i| i["id"] == id.as_str() && i["status"] == "closed")
    );
    let (code, out, err) = cli(&base, &sam, &["incidents", "--status", "open"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(second_id) && out.contains("open"), "{out}");
    let (code, out, err) = cli(&base, &audrey, &["incident", second_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("principal carol"), "{out}");
    assert!(out.contains("action suspend (enforce): done"), "{out}");
    let (code, out, err) = cli(&base, &sam, &["suspensions"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{carol_key}  carol")), "{out}");
    // An auditor cannot lift; the API's reason is printed and the exit fails.
    let (code, _, err) = cli(&base, &audrey, &["lift", &carol_key, "--reason", "x"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("403") && err.contains("SecurityManager"),
        "{err}"
    );
    let (code, out, err) = cli(
        &base,
        &sam,
        &[
            "lift",
            &carol_key,
            "--reason",
            "second burst was the same cleanup",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is lifted"), "{out}");
    let ran = common::call(&carol, "add", read("vm-02")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    let (code, _, err) = cli(&base, &sam, &["lift", &carol_key, "--reason", "again"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("409") && err.contains("is not suspended"),
        "{err}"
    );
    let (code, out, err) = cli(&base, &sam, &["ack", second_id, "--note", "same as before"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acknowledged"), "{out}");
    let (code, out, err) = cli(&base, &sam, &["blocks"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "no network is blocked");
}
