//! `roster fetch` end to end against a customer's web service (an axum server in the
//! test playing their middleware: JSON with deltas and pages, SOAP 1.2 with odd
//! prefixes, a SOAP fault) and their FTP and FTPS servers (vsftpd). Each ends with the
//! directory holding exactly the right people.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::{Install, tenant};

#[path = "../../fetcher/tests/ftp_server/mod.rs"]
mod ftp_server;

/// What the customer's service holds and what it was asked.
#[derive(Default)]
struct Service {
    /// Everyone (answered to a full fetch).
    people: Vec<Value>,
    /// The changes (answered to a delta fetch).
    changes: Vec<Value>,
    /// Answer HTTP 500 for any page after the first.
    fail_after_first_page: bool,
    /// The query of every request, in order.
    asked: Vec<Vec<(String, String)>>,
    /// SOAP: the body to answer.
    soap_answer: Option<String>,
    /// SOAP: the bodies received.
    soap_bodies: Vec<String>,
    /// The bearer token every request must carry, if any.
    token: Option<String>,
    /// How the next JSON answers misbehave.
    trouble: Trouble,
}

/// Ways a customer's service goes wrong.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// It answers well.
    #[default]
    None,
    /// Pages after the first take 5 s.
    SlowPage,
    /// Every page is the first page again (a server that ignores the offset).
    RepeatedPage,
}

type Shared = Arc<Mutex<Service>>;

async fn employees(State(s): State<Shared>, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let q: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let (offset, limit, trouble) = {
        let mut s = s.lock().unwrap();
        s.asked.push(q.clone());
        let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let offset: usize = get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        let limit: usize = get("limit").and_then(|v| v.parse().ok()).unwrap_or(1000);
        let wanted = s.token.as_ref().map(|t| format!("Bearer {t}"));
        if wanted.is_some_and(|w| authorization.as_deref() != Some(w.as_str())) {
            // Echo what came, as careless servers do: Roster must not repeat it.
            let said = format!("bad credentials: {}", authorization.unwrap_or_default());
            return (StatusCode::UNAUTHORIZED, said).into_response();
        }
        if s.fail_after_first_page && offset > 0 {
            return (StatusCode::INTERNAL_SERVER_ERROR, "database unavailable").into_response();
        }
        (offset, limit, s.trouble)
    };
    match trouble {
        Trouble::SlowPage if offset > 0 => {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
        _ => {}
    }
    let s = s.lock().unwrap();
    let offset = if trouble == Trouble::RepeatedPage {
        0
    } else {
        offset
    };
    let delta = q.iter().any(|(k, _)| k == "modifiedSince");
    let all = if delta { &s.changes } else { &s.people };
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let body = json!({ "employees": page }).to_string();
    ([("content-type", "application/json")], body).into_response()
}

async fn soap(State(s): State<Shared>, body: String) -> Response {
    let mut s = s.lock().unwrap();
    s.soap_bodies.push(body);
    let answer = s.soap_answer.clone().unwrap_or_default();
    let status = if answer.contains("Fault") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, [("content-type", "application/soap+xml")], answer).into_response()
}

/// Starts the service on a free loopback port; returns its base URL and state.
fn start_service() -> (String, Shared, std::sync::mpsc::Sender<()>) {
    let state: Shared = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let app = Router::new()
        .route("/employees", axum::routing::get(employees))
        .route("/soap", axum::routing::post(soap))
        .with_state(Arc::clone(&state));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let server = axum::serve(listener, app);
            tokio::select! {
                _ = server => {}
                _ = tokio::task::spawn_blocking(move || stopped.recv()) => {}
            }
        });
    });
    (url, state, stop)
}

fn person(k: usize) -> Value {
    json!({ "email": format!("p{k:03}@x.com"), "name": format!("Person {k}"), "status": "active" })
}

fn apply(i: &Install, yaml: &str) {
    let file = i.file("tenants.yaml", yaml);
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "tenants apply: {}", ran.stderr);
}

fn fetch(i: &Install, t: &str, source: &str) -> (i32, Vec<Value>, String) {
    let ran = i.roster(&["fetch", "--tenant", t, "--source", source, "--json"]);
    let runs = ran
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (ran.code, runs, ran.stderr)
}

fn source(i: &Install, t: &str, name: &str) -> Value {
    let ran = i.roster(&["sources", "list", "--tenant", t, "--json"]);
    ran.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
        .clone()
}

#[test]
fn a_json_service_fetched_full_then_by_delta_and_a_failed_page_keeps_the_watermark() {
    let i = Install::embedded();
    let t = tenant("acme");
    let (url, service, _stop) = start_service();
    service.lock().unwrap().people = (0..120).map(person).collect();
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      dmz:\n        kind: http\n        url: {url}/employees\n        response: json\n        delta: {{param: modifiedSince, overlap: 10m}}\n        page: {{size: 50, offset_param: offset, limit_param: limit}}\n"
        ),
    );

    // First fetch: full, three pages of 50 (the last short), one run.
    let (code, runs, stderr) = fetch(&i, &t, "dmz");
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert_eq!(runs[0]["mode"], "full");
    assert_eq!(runs[0]["created"], 120);
    assert_eq!(i.emails(&t, false).len(), 120);
    {
        let s = service.lock().unwrap();
        assert_eq!(s.asked.len(), 3);
        assert!(
            s.asked
                .iter()
                .all(|q| q.iter().all(|(k, _)| k != "modifiedSince"))
        );
    }
    let first = source(&i, &t, "dmz");
    let mark: chrono::DateTime<chrono::Utc> = serde_json::from_value(first["watermark"].clone())
        .expect("a watermark after a delta source's fetch");

    // Second fetch: a delta from the watermark minus the 10 minutes of overlap.
    {
        let mut s = service.lock().unwrap();
        s.asked.clear();
        s.changes = vec![
            person(500),
            json!({"email": "p001@x.com", "name": "Renamed", "status": "active"}),
        ];
    }
    let (code, runs, stderr) = fetch(&i, &t, "dmz");
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert_eq!(runs[0]["mode"], "delta");
    assert_eq!(
        (runs[0]["created"].clone(), runs[0]["updated"].clone()),
        (json!(1), json!(1))
    );
    let since = (mark - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    {
        let s = service.lock().unwrap();
        let asked: Vec<String> = s.asked[0]
            .iter()
            .filter(|(k, _)| k == "modifiedSince")
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(asked, [since]);
    }
    let people = i.directory(&t, false);
    assert_eq!(people.len(), 121, "a delta deactivates nobody");
    assert!(
        people
            .iter()
            .any(|r| r["email"] == "p001@x.com" && r["display_name"] == "Renamed")
    );
    let second = source(&i, &t, "dmz");
    assert!(second["watermark"] != first["watermark"], "moved");

    // Third fetch: page 2 fails. Nothing is imported and the watermark stays.
    {
        let mut s = service.lock().unwrap();
        s.changes = (600..700).map(person).collect();
        s.fail_after_first_page = true;
    }
    let (code, runs, stderr) = fetch(&i, &t, "dmz");
    assert_eq!((code, runs.len()), (1, 0), "{stderr}");
    assert!(
        stderr.contains("500") && stderr.contains("page 2"),
        "{stderr}"
    );
    let third = source(&i, &t, "dmz");
    assert_eq!(
        third["watermark"], second["watermark"],
        "not moved by a failed fetch"
    );
    assert_eq!(third["last_outcome"], "failed");
    assert_eq!(i.emails(&t, false).len(), 121);
}

/// The envelope namespace and the `response` name of SOAP 1.1 and 1.2.
const SOAP11: (&str, &str) = ("http://schemas.xmlsoap.org/soap/envelope/", "soap11");
const SOAP12: (&str, &str) = ("http://www.w3.org/2003/05/soap-envelope", "soap12");

/// A SOAP service with odd prefixes, then a fault, then a document type: each imported or
/// refused, the directory holding exactly the right people throughout.
fn soap_round((ns, response): (&str, &str)) {
    let i = Install::embedded();
    let t = tenant("acme");
    let (url, service, _stop) = start_service();
    let template = i.file(
        "request.xml",
        format!("<s:Envelope xmlns:s=\"{ns}\"><s:Body>\
         <GetEmployees xmlns=\"urn:hr\"><Since>{{since}}</Since></GetEmployees></s:Body></s:Envelope>"),
    );
    service.lock().unwrap().soap_answer = Some(format!(
        "<?xml version=\"1.0\"?>\
         <env12:Envelope xmlns:env12=\"{ns}\">\
         <env12:Body><h:GetEmployeesResponse xmlns:h=\"urn:hr\"><h:Employees>\
         <h:Employee><h:Email>ann@x.com</h:Email><h:Name>Ann &amp; Co</h:Name><h:Status>active</h:Status></h:Employee>\
         <h:Employee><h:Email>bob@x.com</h:Email><h:Name>Bob</h:Name><h:Status>active</h:Status></h:Employee>\
         </h:Employees></h:GetEmployeesResponse></env12:Body></env12:Envelope>"
    ));
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      hr:\n        kind: http\n        url: {url}/soap\n        response: {response}\n        request_body_file: {}\n        soap_action: urn:GetEmployees\n",
            template.display()
        ),
    );
    let (code, runs, stderr) = fetch(&i, &t, "hr");
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    let people = i.directory(&t, false);
    assert_eq!(people.len(), 2);
    assert_eq!(people[0]["display_name"], "Ann & Co");
    assert!(
        service.lock().unwrap().soap_bodies[0].contains("<Since></Since>"),
        "a full fetch asks from no time"
    );

    let fault = if response == "soap11" {
        "<e:Fault><faultcode>e:Server</faultcode><faultstring>HR system in maintenance</faultstring></e:Fault>"
    } else {
        "<e:Fault><e:Code><e:Value>e:Receiver</e:Value></e:Code>\
         <e:Reason><e:Text xml:lang=\"en\">HR system in maintenance</e:Text></e:Reason></e:Fault>"
    };
    service.lock().unwrap().soap_answer = Some(format!(
        "<e:Envelope xmlns:e=\"{ns}\"><e:Body>{fault}</e:Body></e:Envelope>"
    ));
    let (code, runs, stderr) = fetch(&i, &t, "hr");
    assert_eq!((code, runs.len()), (1, 0));
    assert!(stderr.contains("HR system in maintenance"), "{stderr}");
    assert!(
        source(&i, &t, "hr")["last_error"]
            .as_str()
            .unwrap()
            .contains("HR system in maintenance")
    );
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);

    // A document type with an external entity: refused before anything is read.
    service.lock().unwrap().soap_answer = Some(format!(
        "<?xml version=\"1.0\"?><!DOCTYPE e:Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
         <e:Envelope xmlns:e=\"{ns}\"><e:Body><R xmlns=\"urn:hr\">\
         <Employee><Email>eve@x.com</Email><Name>&x;</Name></Employee></R></e:Body></e:Envelope>"
    ));
    let (code, runs, stderr) = fetch(&i, &t, "hr");
    assert_eq!((code, runs.len()), (1, 0));
    assert!(
        stderr.contains("DOCTYPE") && !stderr.contains("root:x:0"),
        "{stderr}"
    );
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);
}

#[test]
fn a_soap_11_service_with_odd_prefixes_a_fault_and_a_dtd() {
    soap_round(SOAP11);
}

#[test]
fn a_soap_12_service_with_odd_prefixes_a_fault_and_a_dtd() {
    soap_round(SOAP12);
}

fn ftp_round(mode: ftp_server::Mode, kind: &str) {
    let i = Install::embedded();
    let t = tenant("acme");
    let server = ftp_server::Vsftpd::start(mode);
    server.put(
        "outgoing/people.csv",
        b"Email,Name,Status\nann@x.com,Ann,active\nbob@x.com,Bob,active\n",
        1_700_000_000,
    );
    server.mkdir("outgoing/done");
    let ca = if kind == "ftps" {
        format!("        ca_file: {}\n", server.ca.display())
    } else {
        String::new()
    };
    apply(
        &i,
        &format!(
            "tenants:\n  {t}:\n    sources:\n      hr:\n        kind: {kind}\n        host: 127.0.0.1\n        port: {}\n        user: {}\n        password_file: {}\n{ca}        path: /outgoing\n        after_fetch: archive\n        archive_path: /outgoing/done\n        stable_after: 1s\n",
            server.port,
            server.user,
            server.password_file.display()
        ),
    );
    let (code, runs, stderr) = fetch(&i, &t, "hr");
    assert_eq!((code, runs.len()), (0, 1), "{stderr}\n{}", server.log());
    assert_eq!(i.emails(&t, false), ["ann@x.com", "bob@x.com"]);
    assert!(
        server.home.join("outgoing/done/people.csv").exists(),
        "archived"
    );
    let (code, runs, _) = fetch(&i, &t, "hr");
    assert_eq!((code, runs.len()), (0, 0), "nothing new");
    let ran = i.roster(&["sources", "list", "--tenant", &t]);
    assert!(!ran.stdout.contains(&server.password), "{}", ran.stdout);
}

#[test]
fn ftp_pull_end_to_end() {
    ftp_round(ftp_server::Mode::Plain, "ftp");
}

#[test]
fn explicit_ftps_pull_end_to_end() {
    ftp_round(ftp_server::TLS, "ftps");
}

/// A JSON source of the service at `url` with pages of `size`, a bearer token from
/// `ACME_TOKEN` and a request timeout of 2 s.
fn json_source(t: &str, url: &str, size: u32) -> String {
    format!(
        "tenants:\n  {t}:\n    sources:\n      dmz:\n        kind: http\n        url: {url}/employees\n        auth: {{bearer_env: ACME_TOKEN}}\n        timeout: 2s\n        page: {{size: {size}, offset_param: offset, limit_param: limit}}\n"
    )
}

fn fetch_with_token(i: &Install, t: &str, token: &str) -> (i32, Vec<Value>, String) {
    let out = i
        .command("roster")
        .args(["fetch", "--tenant", t, "--source", "dmz", "--json"])
        .env("ACME_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let runs = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        runs,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pages_of_5000_bring_twelve_thousand_people_in_one_run() {
    let i = Install::embedded();
    let t = tenant("acme");
    let (url, service, _stop) = start_service();
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    {
        let mut s = service.lock().unwrap();
        s.people = (0..12_000).map(person).collect();
        s.token = Some(token.clone());
    }
    apply(&i, &json_source(&t, &url, 5000));
    let (code, runs, stderr) = fetch_with_token(&i, &t, &token);
    assert_eq!((code, runs.len()), (0, 1), "{stderr}");
    assert_eq!(runs[0]["created"], 12_000);
    assert_eq!(service.lock().unwrap().asked.len(), 3, "5000 + 5000 + 2000");
    assert_eq!(i.emails(&t, false).len(), 12_000);
    // A wrong token: refused, and the echoed credentials are not repeated anywhere.
    let (code, _, stderr) = fetch_with_token(&i, &t, "wrong-token-0123");
    assert_eq!(code, 1);
    assert!(stderr.contains("401"), "{stderr}");
    i.assert_no_secret(&token, &[&stderr]);
    i.assert_no_secret("wrong-token-0123", &[&stderr]);
}

#[test]
fn a_misbehaving_service_changes_nothing() {
    let i = Install::embedded();
    let t = tenant("acme");
    let (url, service, _stop) = start_service();
    service.lock().unwrap().people = (0..120).map(person).collect();
    apply(&i, &json_source(&t, &url, 50));
    let (code, _, stderr) = fetch_with_token(&i, &t, "unused");
    assert_eq!(code, 0, "{stderr}");
    let before = i.directory_csv(&t, true);
    for (trouble, says) in [
        (Trouble::SlowPage, "no answer within 2s"),
        (Trouble::RepeatedPage, "repeated page"),
    ] {
        {
            let mut s = service.lock().unwrap();
            s.trouble = trouble;
            s.people = (1000..1120).map(person).collect();
        }
        let (code, runs, stderr) = fetch_with_token(&i, &t, "unused");
        assert_eq!((code, runs.len()), (1, 0), "{stderr}");
        assert!(stderr.contains(says), "expected {says:?}: {stderr}");
        assert_eq!(
            i.directory_csv(&t, true),
            before,
            "nothing changed after {says}"
        );
        assert_eq!(source(&i, &t, "dmz")["last_outcome"], "failed");
    }
    let ran = i.roster(&["runs", "--tenant", &t, "--json"]);
    assert_eq!(
        ran.json().as_array().unwrap().len(),
        1,
        "only the first fetch made a run"
    );
}
