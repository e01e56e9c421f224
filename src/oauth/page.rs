//! The facade's pages (maud: every value escaped): the consent page,
//! shown before the user is sent to Entra ID, and the error page for a
//! client or redirect URI that cannot be trusted (never a redirect).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::consent::ClientRequest;
use super::service::ConsentClient;

const STYLE: &str = r#"
:root { color-scheme: light dark; --muted: #5a5a5a; --line: #c8c8c8; --ok: #137333; --bad: #b3261e; }
@media (prefers-color-scheme: dark) { :root { --muted: #b0b0b0; --line: #555; --ok: #81c995; --bad: #f28b82; } }
*, *::before, *::after { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 40rem; padding: 1rem; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { width: 9rem; }
.muted { color: var(--muted); }
.warn { border: 2px solid var(--bad); border-radius: 6px; padding: .5rem .75rem; }
button { font: inherit; padding: .5rem 1.2rem; margin: .75rem .5rem 0 0; border-radius: 6px; border: 1px solid var(--line); cursor: pointer; }
button.approve { background: var(--ok); color: #fff; border-color: var(--ok); font-weight: 700; }
button.deny { background: var(--bad); color: #fff; border-color: var(--bad); font-weight: 700; }
"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden" }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// The consent page for pending request `id`.
pub fn consent(id: &str, csrf: &str, request: &ClientRequest, client: &ConsentClient) -> Markup {
    layout(
        "Allow access?",
        html! {
            h1 { "Allow " (client.name) " to use Warden as you?" }
            p {
                "An application asks to call Warden's tools on your behalf. Warden will sign you in at "
                "Microsoft Entra ID next; the application never receives your Entra ID token."
            }
            table {
                tbody {
                    tr { th scope="row" { "Application" } td { strong { (client.name) } br; span.muted { (client.provenance) } } }
                    tr { th scope="row" { "Sends you back to" } td { strong { (client.redirect_host) } } }
                    tr { th scope="row" { "Access" } td { (request.scopes.join(", ")) " on " code { (request.resource) } } }
                    @if request.step_up {
                        tr { th scope="row" { "Sign-in" } td { "with multi-factor authentication, as a Warden policy requires for some calls" } }
                    }
                }
            }
            @if client.loopback {
                p.warn {
                    "This application receives the answer on this computer (a local address). "
                    "Allow it only if you just started it yourself."
                }
            }
            form method="post" action="/authorize/decision" {
                input type="hidden" name="consent" value=(id);
                input type="hidden" name="csrf" value=(csrf);
                button.approve type="submit" name="decision" value="approve" { "Allow" }
                button.deny type="submit" name="decision" value="deny" { "Deny" }
            }
            p.muted { "Your answer is remembered for this application, address and access; it is recorded in Warden's audit log." }
        },
    )
}

/// An error the browser sees instead of being sent anywhere.
pub fn error(message: &str) -> Markup {
    layout(
        "Sign-in refused",
        html! {
            h1 { "Sign-in refused" }
            p role="alert" { (message) }
            p.muted { "Nothing was sent to the application. Start the sign-in again from the application." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_escapes_what_clients_claim() {
        let request = ClientRequest {
            client_id: "wdc_x".into(),
            client_label: "<b>Evil</b>".into(),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            state: None,
            challenge: "c".into(),
            resource: "https://warden.example/mcp".into(),
            scopes: vec!["mcp".into()],
            step_up: false,
        };
        let client = ConsentClient {
            name: "<script>alert(1)</script>".into(),
            provenance: "unverified".into(),
            redirect_host: "127.0.0.1".into(),
            loopback: true,
        };
        let page = consent("id-1", "csrf-1", &request, &client).into_string();
        assert!(!page.contains("<script>alert(1)"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("unverified"));
        assert!(page.contains(r#"name="csrf" value="csrf-1""#));
        assert!(page.contains("local address"));
        assert!(error("<i>x</i>").into_string().contains("&lt;i&gt;"));
        assert!(!page.contains("multi-factor"));
        let step_up = ClientRequest {
            step_up: true,
            ..request
        };
        let page = consent("id-1", "csrf-1", &step_up, &client).into_string();
        assert!(page.contains("with multi-factor authentication"), "{page}");
    }
}
