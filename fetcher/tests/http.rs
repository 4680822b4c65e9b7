//! The web-service source (`roster_fetcher::sources::http::fetch`) against real HTTP
//! servers on 127.0.0.1: axum for plain HTTP, a small rustls server for mutual TLS.
//! Each server records what it was sent; each test checks the requests, the records
//! written to `out` (or that nothing is left there when the fetch fails), and the error.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use roster_fetcher::sources::SourceError;
use roster_fetcher::sources::http::{self, HttpFetched};
use roster_fetcher::sources::spec::SourceSpec;
use serde_json::{Value, json};

const WHAT: &str = "acme/dmz";
const MAX_BYTES: u64 = 1 << 30;
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

// ---------------------------------------------------------------------------------------
// The fake web service.

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn number(&self, name: &str) -> usize {
        self.param(name).unwrap().parse().unwrap()
    }

    /// The text of `<tag>` in the request body (SOAP).
    fn element(&self, tag: &str) -> &str {
        let open = format!("<{tag}>");
        let start = self.body.find(&open).unwrap() + open.len();
        let end = self.body[start..].find(&format!("</{tag}>")).unwrap();
        &self.body[start..start + end]
    }
}

/// What the server answers.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

fn json_reply(value: &Value) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "application/json",
        body: value.to_string(),
        delay: Duration::ZERO,
    }
}

fn xml_reply(body: String) -> Reply {
    Reply {
        status: StatusCode::OK,
        content_type: "text/xml; charset=utf-8",
        body,
        delay: Duration::ZERO,
    }
}

fn status_reply(status: StatusCode, body: &str) -> Reply {
    Reply {
        status,
        content_type: "text/plain",
        body: body.to_owned(),
        delay: Duration::ZERO,
    }
}

type Answer = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct Fake {
    seen: Mutex<Vec<Seen>>,
    answer: Box<Answer>,
}

struct Server {
    url: String,
    fake: Arc<Fake>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let seen = Seen {
        method,
        path: uri.path().to_owned(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        headers,
        body,
    };
    let index = {
        let mut all = fake.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (fake.answer)(&seen, index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    (
        reply.status,
        [("content-type", reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// Starts a server on 127.0.0.1 (port 0) answering every request with `answer(request,
/// its index from 0)`.
async fn serve(answer: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
    let fake = Arc::new(Fake {
        seen: Mutex::new(Vec::new()),
        answer: Box::new(answer),
    });
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url: format!("http://127.0.0.1:{port}/api/people"),
        fake,
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn setup() -> tempfile::TempDir {
    roster_shared::install_crypto_provider();
    tempfile::tempdir().unwrap()
}

/// A JSON record as a service would send it (with a nested value, kept as it came).
fn person(i: usize) -> Value {
    json!({
        "email": format!("p{i:05}@acme.test"),
        "first_name": format!("P{i}"),
        "id": i,
        "groups": ["staff", {"site": "lyon"}],
    })
}

fn people(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(person).collect()
}

/// A source spec: `{"kind": "http", "url": url}` plus `extra`.
fn spec(url: &str, extra: &Value) -> SourceSpec {
    let mut value = json!({"kind": "http", "url": url});
    let map = value.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    serde_json::from_value(value).unwrap()
}

async fn fetch(
    spec: &SourceSpec,
    since: Option<DateTime<Utc>>,
    max_rows: u64,
    out: &Path,
) -> Result<HttpFetched, SourceError> {
    http::fetch(spec, since, max_rows, MAX_BYTES, out, WHAT).await
}

/// The records in the document at `out`, which must be exactly `{"employees": [...]}`
/// with one record a line.
fn written(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&r#"{"employees":["#), "{text:.200}");
    assert_eq!(lines.last(), Some(&"]}"), "{text:.200}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let map = doc.as_object().unwrap();
    assert_eq!(map.len(), 1, "{text:.200}");
    let records = map["employees"].as_array().unwrap().clone();
    if !records.is_empty() {
        assert_eq!(lines.len(), records.len() + 2, "one record a line");
    }
    records
}

/// Answers offset paging over `total` people (`offset`, `limit` query parameters).
fn offset_pages(total: usize) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    move |seen, _| {
        let offset = seen.number("offset").min(total);
        let end = (offset + seen.number("limit")).min(total);
        json_reply(&json!({"total": total, "employees": people(offset..end)}))
    }
}

fn offset_spec(url: &str, size: u32) -> SourceSpec {
    spec(
        url,
        &json!({"page": {"size": size, "offset_param": "offset", "limit_param": "limit"}}),
    )
}

fn since() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 14, 50, 0).unwrap()
}

// ---------------------------------------------------------------------------------------
// JSON.

#[tokio::test]
async fn json_offset_paging_in_pages_of_50() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let server = serve(offset_pages(120)).await;
    let got = fetch(&offset_spec(&server.url, 50), None, 1000, &out)
        .await
        .unwrap();
    assert_eq!((got.records, got.pages), (120, 3));
    assert_eq!(written(&out), people(0..120));
    let seen = server.seen();
    let asked: Vec<(&str, Option<&str>, Option<&str>)> = seen
        .iter()
        .map(|s| (s.path.as_str(), s.param("offset"), s.param("limit")))
        .collect();
    assert_eq!(
        asked,
        [
            ("/api/people", Some("0"), Some("50")),
            ("/api/people", Some("50"), Some("50")),
            ("/api/people", Some("100"), Some("50")),
        ]
    );
    assert!(seen.iter().all(|s| s.method == Method::GET));
    assert!(seen.iter().all(|s| s.param("modifiedSince").is_none()));
}

#[tokio::test]
async fn json_offset_paging_in_pages_of_5000() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let server = serve(offset_pages(12_000)).await;
    let got = fetch(&offset_spec(&server.url, 5000), None, 12_000, &out)
        .await
        .unwrap();
    assert_eq!((got.records, got.pages), (12_000, 3));
    assert_eq!(written(&out), people(0..12_000));
    let offsets: Vec<usize> = server.seen().iter().map(|s| s.number("offset")).collect();
    assert_eq!(offsets, [0, 5000, 10_000]);
    assert_eq!(got.bytes, std::fs::metadata(&out).unwrap().len());
}

#[tokio::test]
async fn json_page_number_paging_ends_on_an_empty_page() {
    let dir = setup();
    let out = dir.path().join("out.json");
    // 100 records in pages of 50: two full pages, then an empty one.
    let server = serve(|seen: &Seen, _| {
        let page = seen.number("page");
        let size = seen.number("per_page");
        let start = ((page - 1) * size).min(100);
        let end = (start + size).min(100);
        json_reply(&json!({"data": people(start..end)}))
    })
    .await;
    let spec = spec(
        &server.url,
        &json!({"page": {"size": 50, "page_param": "page", "size_param": "per_page"}}),
    );
    let got = fetch(&spec, None, 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (100, 3));
    assert_eq!(written(&out), people(0..100));
    let asked: Vec<(usize, usize)> = server
        .seen()
        .iter()
        .map(|s| (s.number("page"), s.number("per_page")))
        .collect();
    assert_eq!(asked, [(1, 50), (2, 50), (3, 50)]);
}

#[tokio::test]
async fn json_token_paging_follows_tokens_until_there_is_none() {
    let dir = setup();
    let out = dir.path().join("out.json");
    // Full pages each time: only the missing token ends the fetch. The records are under
    // "Users" (any case), the token at paging.next; the first token needs URL encoding.
    let server = serve(|seen: &Seen, _| {
        let (records, next) = match seen.param("cursor") {
            None => (people(0..50), json!("a b&c=d/1")),
            Some("a b&c=d/1") => (people(50..100), json!("t2")),
            Some("t2") => (people(100..150), Value::Null),
            Some(other) => panic!("unexpected token {other}"),
        };
        json_reply(&json!({"Users": records, "paging": {"next": next}}))
    })
    .await;
    let spec = spec(
        &server.url,
        &json!({"page": {"size": 50, "token_param": "cursor", "token_path": "paging.next"}}),
    );
    let got = fetch(&spec, None, 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (150, 3));
    assert_eq!(written(&out), people(0..150));
    let tokens: Vec<Option<String>> = server
        .seen()
        .iter()
        .map(|s| s.param("cursor").map(str::to_owned))
        .collect();
    assert_eq!(
        tokens,
        [None, Some("a b&c=d/1".to_owned()), Some("t2".to_owned())]
    );
}

#[tokio::test]
async fn json_records_are_found_by_path_bare_or_under_a_known_key() {
    let dir = setup();
    let out = dir.path().join("out.json");

    let nested = serve(|_: &Seen, _| {
        json_reply(&json!({"result": {"staff": people(0..3)}, "items": [1, 2]}))
    })
    .await;
    let with_path = spec(&nested.url, &json!({"records_path": "result.staff"}));
    let got = fetch(&with_path, None, 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (3, 1));
    assert_eq!(written(&out), people(0..3));
    assert_eq!(nested.seen().len(), 1);
    assert_eq!(nested.seen()[0].query, []);

    let bare = serve(|_: &Seen, _| json_reply(&json!(people(0..2)))).await;
    fetch(&spec(&bare.url, &json!({})), None, 1000, &out)
        .await
        .unwrap();
    assert_eq!(written(&out), people(0..2));

    let two = serve(|_: &Seen, _| json_reply(&json!({"users": [], "employees": []}))).await;
    let e = fetch(&spec(&two.url, &json!({})), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: several lists of records in the answer (employees, users): set \
         records_path"
    );
    assert!(!out.exists());

    let none = serve(|_: &Seen, _| json_reply(&json!({"count": 0}))).await;
    let e = fetch(&spec(&none.url, &json!({})), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("acme/dmz: page 1: no list of records in the answer"),
        "{e}"
    );

    let not_json = serve(|_: &Seen, _| status_reply(StatusCode::OK, "<html>hi</html>")).await;
    let e = fetch(&spec(&not_json.url, &json!({})), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("acme/dmz: page 1: the answer is not JSON"),
        "{e}"
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn delta_param_carries_exactly_the_time_given() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let server = serve(offset_pages(70)).await;
    let spec = spec(
        &server.url,
        &json!({
            "delta": {"param": "modifiedSince"},
            "page": {"size": 50, "offset_param": "offset", "limit_param": "limit"},
        }),
    );
    fetch(&spec, Some(since()), 1000, &out).await.unwrap();
    assert_eq!(written(&out), people(0..70));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.param("modifiedSince"), Some("2026-11-29T14:50:00Z"));
    }

    // A full fetch sends no time.
    fetch(&spec, None, 1000, &out).await.unwrap();
    assert_eq!(written(&out), people(0..70));
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen[2..].iter().all(|s| s.param("modifiedSince").is_none()));
}

// ---------------------------------------------------------------------------------------
// Failures.

#[tokio::test]
async fn http_500_on_page_2_fails_naming_status_and_page() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let pages = offset_pages(120);
    let server = serve(move |seen: &Seen, i| {
        if i == 1 {
            status_reply(StatusCode::INTERNAL_SERVER_ERROR, "database\n   on fire")
        } else {
            pages(seen, i)
        }
    })
    .await;
    let e = fetch(&offset_spec(&server.url, 50), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 2 (offset 50): HTTP 500 Internal Server Error: database on fire"
    );
    assert_eq!(server.seen().len(), 2, "no page asked after the failed one");
    assert!(!out.exists(), "nothing is left of a failed fetch");
}

#[tokio::test]
async fn slow_page_times_out() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let pages = offset_pages(120);
    let server = serve(move |seen: &Seen, i| {
        let mut reply = pages(seen, i);
        if i == 1 {
            reply.delay = Duration::from_secs(5);
        }
        reply
    })
    .await;
    let mut spec = offset_spec(&server.url, 50);
    spec.timeout = Some(serde_json::from_value(json!("1s")).unwrap());
    let started = Instant::now();
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, SourceError::Timeout(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 2 (offset 50): no answer within 1s"
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn a_repeated_page_fails() {
    let dir = setup();
    let out = dir.path().join("out.json");
    // Ignores the offset: the same 50 people every time.
    let server = serve(|_: &Seen, _| json_reply(&json!({"employees": people(0..50)}))).await;
    let e = fetch(&offset_spec(&server.url, 50), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 2 (offset 50): the server repeated page 1"
    );
    assert_eq!(server.seen().len(), 2);
    assert!(!out.exists());
}

#[tokio::test]
async fn a_server_that_never_ends_is_stopped_after_max_rows_over_size_pages() {
    let dir = setup();
    let out = dir.path().join("out.json");
    // Always a full page of new people.
    let server = serve(|seen: &Seen, _| {
        let offset = seen.number("offset");
        json_reply(&json!({"employees": people(offset..offset + 50)}))
    })
    .await;
    // 200 rows at most, 50 a page: 4 pages, plus one for the final empty page.
    let e = fetch(&offset_spec(&server.url, 50), None, 200, &out)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: more than 5 pages: the server seems to loop"
    );
    assert_eq!(server.seen().len(), 5);
    assert!(!out.exists());
}

#[tokio::test]
async fn more_than_max_bytes_fails() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let server = serve(offset_pages(120)).await;
    let e = http::fetch(&offset_spec(&server.url, 50), None, 1000, 6000, &out, WHAT)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 2 (offset 50): more than 6000 bytes in all (ROSTER_MAX_FILE_BYTES)"
    );
    assert!(!out.exists());

    // Just enough is fine.
    fetch(&offset_spec(&server.url, 50), None, 1000, &out)
        .await
        .unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    http::fetch(&offset_spec(&server.url, 50), None, 1000, size, &out, WHAT)
        .await
        .unwrap();
    assert_eq!(written(&out), people(0..120));
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/api");
    let e = fetch(&spec(&url, &json!({})), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Connect(_)), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "acme/dmz: page 1: cannot reach 127.0.0.1:{port}: "
        )),
        "{e}"
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------
// SOAP.

/// A SOAP 1.1 answer with odd prefixes: the envelope as `x:`, a decoy `soap:Body` in
/// another namespace before the real one, records as `soap:Employee` in a third.
fn soap11_answer(range: std::ops::Range<usize>) -> String {
    let mut employees = String::new();
    for i in range {
        employees.push_str(&format!(
            "<soap:Employee xmlns:soap=\"urn:people\">\
               <soap:Email>p{i:05}@acme.test</soap:Email>\
               <soap:Name>Zo&#235; &amp; Co {i}</soap:Name>\
               <soap:Title><![CDATA[<b>Boss</b>]]></soap:Title>\
               <soap:Phone/>\
             </soap:Employee>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <x:Envelope xmlns:x=\"{SOAP11}\" xmlns:soap=\"urn:decoy\">\
           <soap:Body><soap:Row><soap:A>decoy</soap:A></soap:Row></soap:Body>\
           <x:Body>\
             <r:GetEmployeesResponse xmlns:r=\"urn:hr\"><r:GetEmployeesResult>\n{employees}\
             </r:GetEmployeesResult></r:GetEmployeesResponse>\
           </x:Body>\
         </x:Envelope>"
    )
}

fn soap11_record(i: usize) -> Value {
    json!({
        "Email": format!("p{i:05}@acme.test"),
        "Name": format!("Zoë & Co {i}"),
        "Title": "<b>Boss</b>",
        "Phone": "",
    })
}

fn template(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("request.xml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn soap11_with_odd_prefixes_offset_paging_and_delta() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let server = serve(|seen: &Seen, _| {
        let offset: usize = seen.element("Offset").parse().unwrap();
        let limit: usize = seen.element("Limit").parse().unwrap();
        xml_reply(soap11_answer(offset..(offset + limit).min(60)))
    })
    .await;
    let body = template(
        dir.path(),
        &format!(
            "<soap:Envelope xmlns:soap=\"{SOAP11}\"><soap:Body><GetEmployees xmlns=\"urn:hr\">\
             <Since>{{since}}</Since><Offset>{{offset}}</Offset><Limit>{{limit}}</Limit>\
             <Page>{{page}}</Page><Keep>{{kept}}</Keep>\
             </GetEmployees></soap:Body></soap:Envelope>"
        ),
    );
    let spec = spec(
        &server.url,
        &json!({
            "response": "soap11",
            "request_body_file": body,
            "soap_action": "urn:hr/GetEmployees",
            "delta": {"param": "unused"},
            "page": {"size": 50, "offset_param": "o", "limit_param": "l"},
        }),
    );
    let got = fetch(&spec, Some(since()), 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (60, 2));
    assert_eq!(
        written(&out),
        (0..60).map(soap11_record).collect::<Vec<_>>()
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for (n, s) in seen.iter().enumerate() {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.header("content-type"), Some("text/xml; charset=utf-8"));
        assert_eq!(s.header("soapaction"), Some("\"urn:hr/GetEmployees\""));
        assert_eq!(s.query, [], "SOAP sends everything in the body");
        assert_eq!(s.element("Since"), "2026-11-29T14:50:00Z");
        assert_eq!(s.element("Offset"), (n * 50).to_string());
        assert_eq!(s.element("Limit"), "50");
        assert_eq!(s.element("Page"), (n + 1).to_string());
        assert_eq!(s.element("Keep"), "{kept}", "other braces stay");
    }

    // A full fetch fills {since} with nothing.
    fetch(&spec, None, 1000, &out).await.unwrap();
    assert_eq!(server.seen()[2].element("Since"), "");
}

#[tokio::test]
async fn soap12_with_default_namespaces_and_token_paging() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let answer = |range: std::ops::Range<usize>, next: &str| {
        let mut employees = String::new();
        for i in range {
            employees.push_str(&format!(
                "<Employee><Email>p{i:05}@acme.test</Email><Dept><Name>D{i}</Name></Dept>\
                 </Employee>"
            ));
        }
        format!(
            "<Envelope xmlns=\"{SOAP12}\"><Header/><Body>\
               <GetEmployeesResponse xmlns=\"urn:hr\">\
                 <NextPage>{next}</NextPage><Employees>{employees}</Employees>\
               </GetEmployeesResponse>\
             </Body></Envelope>"
        )
    };
    let server = serve(move |seen: &Seen, _| {
        let reply = match seen.element("Token") {
            "" => answer(0..50, "a&amp;&lt;1"),
            "a&amp;&lt;1" => answer(50..100, "t2"),
            "t2" => answer(100..100, ""),
            other => panic!("unexpected token {other}"),
        };
        Reply {
            content_type: "application/soap+xml; charset=utf-8",
            ..xml_reply(reply)
        }
    })
    .await;
    let body = template(
        dir.path(),
        &format!(
            "<e:Envelope xmlns:e=\"{SOAP12}\"><e:Body><GetEmployees xmlns=\"urn:hr\">\
             <Token>{{token}}</Token></GetEmployees></e:Body></e:Envelope>"
        ),
    );
    let spec = spec(
        &server.url,
        &json!({
            "response": "soap12",
            "request_body_file": body,
            "soap_action": "urn:hr/GetEmployees",
            "records_path": "Employees.Employee",
            "page": {"size": 50, "token_param": "unused", "token_path": "GetEmployeesResponse.NextPage"},
        }),
    );
    let got = fetch(&spec, None, 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (100, 3));
    let expected: Vec<Value> = (0..100)
        .map(|i| json!({"Email": format!("p{i:05}@acme.test"), "Dept.Name": format!("D{i}")}))
        .collect();
    assert_eq!(written(&out), expected);
    let seen = server.seen();
    let tokens: Vec<&str> = seen.iter().map(|s| s.element("Token")).collect();
    assert_eq!(
        tokens,
        ["", "a&amp;&lt;1", "t2"],
        "the token goes back XML-escaped"
    );
    for s in &seen {
        assert_eq!(
            s.header("content-type"),
            Some("application/soap+xml; charset=utf-8; action=\"urn:hr/GetEmployees\"")
        );
        assert_eq!(s.header("soapaction"), None);
    }
}

#[tokio::test]
async fn soap_envelope_is_known_by_namespace_not_prefix() {
    let dir = setup();
    let out = dir.path().join("out.json");
    // Prefix "soap" as usual, but bound to the wrong namespace.
    let server = serve(|_: &Seen, _| {
        xml_reply(
            "<soap:Envelope xmlns:soap=\"urn:not-soap\"><soap:Body><E><Email>a@b</Email></E>\
             </soap:Body></soap:Envelope>"
                .into(),
        )
    })
    .await;
    let body = template(dir.path(), "<x/>");
    let spec = spec(
        &server.url,
        &json!({"response": "soap11", "request_body_file": body}),
    );
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: not a SOAP 1.1 envelope: the root element is Envelope in \
         namespace urn:not-soap"
    );
    assert!(!out.exists());

    // A SOAP 1.2 envelope where 1.1 is expected.
    let server = serve(|_: &Seen, _| {
        xml_reply(format!(
            "<Envelope xmlns=\"{SOAP12}\"><Body><E><Email>a@b</Email></E></Body></Envelope>"
        ))
    })
    .await;
    let spec = SourceSpec {
        url: Some(server.url.clone()),
        ..spec
    };
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: a SOAP 1.2 answer to a SOAP 1.1 request"
    );
}

#[tokio::test]
async fn soap_faults_fail_naming_the_fault_string() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let body = template(dir.path(), "<x/>");

    // SOAP 1.1: HTTP 500 carrying the fault.
    let server = serve(|_: &Seen, _| Reply {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        ..xml_reply(format!(
            "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><s:Fault>\
               <faultcode>s:Server</faultcode><faultstring>Tenant acme is suspended</faultstring>\
             </s:Fault></s:Body></s:Envelope>"
        ))
    })
    .await;
    let spec11 = spec(
        &server.url,
        &json!({"response": "soap11", "request_body_file": body}),
    );
    let e = fetch(&spec11, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: HTTP 500 Internal Server Error: SOAP fault s:Server: Tenant acme \
         is suspended"
    );
    assert!(!out.exists());

    // SOAP 1.2: a fault in a 200 answer, odd prefix.
    let server = serve(|_: &Seen, _| {
        xml_reply(format!(
            "<env:Envelope xmlns:env=\"{SOAP12}\"><env:Body><env:Fault>\
               <env:Code><env:Value>env:Sender</env:Value></env:Code>\
               <env:Reason><env:Text xml:lang=\"en\">Invalid since: &quot;x&quot;</env:Text>\
               </env:Reason></env:Fault></env:Body></env:Envelope>"
        ))
    })
    .await;
    let spec12 = spec(
        &server.url,
        &json!({"response": "soap12", "request_body_file": body}),
    );
    let e = fetch(&spec12, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: SOAP fault env:Sender: Invalid since: \"x\""
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn soap_doctype_and_external_entities_are_refused() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").unwrap();
    let file_url = format!("file://{}", secret.display());
    let server = serve(move |_: &Seen, _| {
        xml_reply(format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM \"{file_url}\">]>\
             <s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><E><Email>&x;</Email><N>n</N></E>\
             </s:Body></s:Envelope>"
        ))
    })
    .await;
    let body = template(dir.path(), "<x/>");
    let spec = spec(
        &server.url,
        &json!({"response": "soap11", "request_body_file": body}),
    );
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Protocol(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: the answer has a DOCTYPE: DTDs and entity declarations are refused"
    );
    assert!(!format!("{e:?}").contains("TOP-SECRET"));
    assert!(!out.exists());

    // Without a DOCTYPE, an entity is simply undefined.
    let server = serve(|_: &Seen, _| {
        xml_reply(format!(
            "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><E><Email>&x;</Email></E></s:Body>\
             </s:Envelope>"
        ))
    })
    .await;
    let spec = SourceSpec {
        url: Some(server.url.clone()),
        ..spec
    };
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "acme/dmz: page 1: the answer uses the undefined entity &x;"
    );
}

#[tokio::test]
async fn soap_template_must_hold_what_paging_and_delta_need() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let body = template(dir.path(), "<Get><Since>{since}</Since></Get>");
    let spec = spec(
        "http://127.0.0.1:9/",
        &json!({
            "response": "soap11",
            "request_body_file": body,
            "page": {"size": 50, "token_param": "t", "token_path": "Next"},
        }),
    );
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Config(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "acme/dmz: request_body_file {}: no {{token}} placeholder (token paging needs it)",
            body.display()
        )
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------
// Authentication. Setting environment variables in-process needs `unsafe` (forbidden
// here), so these tests run again in a child process that has the secrets set.

const CHILD: &str = "ROSTER_HTTP_TEST_CHILD";
const TOKEN_VAR: &str = "ROSTER_HTTP_TEST_TOKEN";
const TOKEN: &str = "tok-3f9a1c7e5b";
const PASSWORD_VAR: &str = "ROSTER_HTTP_TEST_PASSWORD";
const PASSWORD: &str = "pw-9d8c7b6a5e";
/// base64("svc-roster:pw-9d8c7b6a5e").
const BASIC: &str = "c3ZjLXJvc3Rlcjpwdy05ZDhjN2I2YTVl";
const KEY_VAR: &str = "ROSTER_HTTP_TEST_API_KEY";
const KEY: &str = "key-1a2b3c4d5e";

/// In the test process: runs `test` again in a child process with the secrets set,
/// asserts it passed, and returns `true` (the caller is done). In the child: `false`.
fn ran_in_child(test: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .env(TOKEN_VAR, TOKEN)
        .env(PASSWORD_VAR, PASSWORD)
        .env(KEY_VAR, KEY)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("test result: ok. 1 passed"), "{text}");
    true
}

/// `/ok` answers one person when `header` is exactly `expected`, 401 otherwise; any
/// other path answers 401 quoting the credentials it was sent.
async fn guarded(header: &'static str, expected: String) -> Server {
    serve(move |seen: &Seen, _| {
        let sent = seen.header(header).unwrap_or("(none)").to_owned();
        if seen.path == "/ok" && sent == expected {
            json_reply(&json!([person(1)]))
        } else {
            status_reply(
                StatusCode::UNAUTHORIZED,
                &format!("credentials {header}: {sent} refused"),
            )
        }
    })
    .await
}

fn at(server: &Server, path: &str) -> String {
    server.url.replace("/api/people", path)
}

async fn check_auth(server: &Server, auth: &Value, hidden: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let good = spec(&at(server, "/ok"), &json!({"auth": auth}));
    fetch(&good, None, 1000, &out).await.unwrap();
    assert_eq!(written(&out), [person(1)]);

    let echo = spec(&at(server, "/echo"), &json!({"auth": auth}));
    let e = fetch(&echo, None, 1000, &out).await.unwrap_err();
    let (text, debug) = (e.to_string(), format!("{e:?} {echo:?}"));
    assert!(
        text.starts_with("acme/dmz: page 1: HTTP 401 Unauthorized: credentials"),
        "{text}"
    );
    assert!(text.contains("***"), "the echoed secret is masked: {text}");
    for secret in hidden {
        assert!(!text.contains(secret), "{text}");
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(!out.exists());
}

#[tokio::test]
async fn auth_headers_are_sent_and_secrets_never_shown() {
    if ran_in_child("auth_headers_are_sent_and_secrets_never_shown") {
        return;
    }
    roster_shared::install_crypto_provider();
    let bearer = guarded("authorization", format!("Bearer {TOKEN}")).await;
    check_auth(&bearer, &json!({"bearer_env": TOKEN_VAR}), &[TOKEN]).await;

    let basic = guarded("authorization", format!("Basic {BASIC}")).await;
    check_auth(
        &basic,
        &json!({"basic_user": "svc-roster", "password_env": PASSWORD_VAR}),
        &[PASSWORD, BASIC],
    )
    .await;

    let header = guarded("x-api-key", KEY.to_owned()).await;
    check_auth(
        &header,
        &json!({"header": "X-Api-Key", "value_env": KEY_VAR}),
        &[KEY],
    )
    .await;

    // Redirects are followed within the origin only: elsewhere, the key would go along.
    let thief = serve(|_: &Seen, _| json_reply(&json!([person(2)]))).await;
    let base = redirecting(thief.url.clone()).await;
    let auth = json!({"auth": {"header": "X-Api-Key", "value_env": KEY_VAR}});
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    fetch(&spec(&format!("{base}/moved"), &auth), None, 1000, &out)
        .await
        .unwrap();
    assert_eq!(
        written(&out),
        [person(1)],
        "a same-origin redirect is followed"
    );
    let e = fetch(&spec(&format!("{base}/elsewhere"), &auth), None, 1000, &out)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("HTTP 302"), "{e}");
    assert!(thief.seen().is_empty(), "the key went to another origin");
}

/// A server on 127.0.0.1 (its base URL returned) whose `/ok` answers one person when
/// `x-api-key` is the test key, `/moved` redirects to its own `/ok`, and `/elsewhere`
/// redirects to `target`, another origin.
async fn redirecting(target: String) -> String {
    let found = |to: String| (StatusCode::FOUND, [("location", to)]).into_response();
    let app = Router::new()
        .route(
            "/ok",
            axum::routing::get(|headers: HeaderMap| async move {
                if headers.get("x-api-key").is_some_and(|v| v == KEY) {
                    (
                        [("content-type", "application/json")],
                        json!([person(1)]).to_string(),
                    )
                        .into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .route(
            "/moved",
            axum::routing::get(move || async move { found("/ok".to_owned()) }),
        )
        .route(
            "/elsewhere",
            axum::routing::get(move || async move { found(target) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn an_unset_secret_is_a_config_error_naming_the_variable() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let spec = spec(
        "http://127.0.0.1:9/",
        &json!({"auth": {"bearer_env": "ROSTER_HTTP_TEST_SURELY_UNSET"}}),
    );
    let e = fetch(&spec, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Config(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "acme/dmz bearer token: environment variable ROSTER_HTTP_TEST_SURELY_UNSET is not set"
    );
}

// ---------------------------------------------------------------------------------------
// TLS: a rustls server that requires a client certificate from the test CA.

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgIUHnN+pONi5HFMYvpg4bgxoxlZZf4wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOUm9zdGVyIFRlc3QgQ0EwIBcNMjYxMTI5MTUzMTM0WhgPMjEy
NjExMDUxNTMxMzRaMBkxFzAVBgNVBAMMDlJvc3RlciBUZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE+3mxQelhxxMu1+E8dRgf0DJ56KCJeM8zZiLFn9On
St43psE2UkRHE4H1/HrRH2ZrECxnXVwTABXER9n7iXcFwaNjMGEwHQYDVR0OBBYE
FPMo30a5iAxRq23f3jz7sjtEjwtsMB8GA1UdIwQYMBaAFPMo30a5iAxRq23f3jz7
sjtEjwtsMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49
BAMCA0gAMEUCIQDMZxG2ELXXKYqUDwZuZ/+OP5WwZm8YEC29SnwQ6N/DgAIgBgSo
ma8pzNY2Gpty25KuAI/IXujRpkn2FclnHao3fDA=
-----END CERTIFICATE-----
";

/// For 127.0.0.1 and localhost, signed by the test CA, valid until 2126.
const SERVER_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIByzCCAXCgAwIBAgIUeS49YMIDafkuBDnzPban41v6H2gwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOUm9zdGVyIFRlc3QgQ0EwIBcNMjYxMTI5MTUzMTM1WhgPMjEy
NjExMDUxNTMxMzVaMB0xGzAZBgNVBAMMEnJvc3Rlci10ZXN0LXNlcnZlcjBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABHg6cB3MNE7ti/WDD327eS5RjXpVAKlYwJ2S
GG2UNi4KSmH2d2+gV+YysK0L6pYeOX2H8NqoUUqysy58yU2Es8ejgY8wgYwwCQYD
VR0TBAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYD
VR0RBBMwEYcEfwAAAYIJbG9jYWxob3N0MB0GA1UdDgQWBBQcmVCperp1IR1XMtXs
XaFXqIc16TAfBgNVHSMEGDAWgBTzKN9GuYgMUatt3948+7I7RI8LbDAKBggqhkjO
PQQDAgNJADBGAiEA1tf5ZAysP7k3e+H7Bw+S5exGU708gOYpCZgw2F83Bu8CIQDA
tc+8LeYdutl/Etil/9k/1Hc6oOXbaROGYqzZyetWGA==
-----END CERTIFICATE-----
";

/// A throwaway key for the test server certificate only.
const SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJJ7jMDnqj0GwaoM6
H9j14KdE0S5WBjzW3+lB+nvB6H2hRANCAAR4OnAdzDRO7Yv1gw99u3kuUY16VQCp
WMCdkhhtlDYuCkph9ndvoFfmMrCtC+qWHjl9h/DaqFFKsrMufMlNhLPH
-----END PRIVATE KEY-----
";

/// A client certificate (clientAuth) signed by the test CA.
const CLIENT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBrDCCAVKgAwIBAgIUeS49YMIDafkuBDnzPban41v6H2kwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOUm9zdGVyIFRlc3QgQ0EwIBcNMjYxMTI5MTUzMTM1WhgPMjEy
NjExMDUxNTMxMzVaMB0xGzAZBgNVBAMMEnJvc3Rlci10ZXN0LWNsaWVudDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABJWyVnOmTxaA5TtE9GUIiITsPcqEjQW0FJUD
SM8LwMc7ZqhSMt8XOQBTo+i+lslOALLqqhKq+QQkt4NEmU1BiqSjcjBwMAkGA1Ud
EwQCMAAwDgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMCMB0GA1Ud
DgQWBBR24VyhwxUXxY88jz30RLbvCOkqiDAfBgNVHSMEGDAWgBTzKN9GuYgMUatt
3948+7I7RI8LbDAKBggqhkjOPQQDAgNIADBFAiAwZczDO4TcjD/n1AfnRnze8H+A
7cjP3+59MoD8sX0zQQIhAJf31iREiukGtKzcMJZBthANNstoKbat98D0+4ki816G
-----END CERTIFICATE-----
";

/// A throwaway key for the test client certificate only.
const CLIENT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQVDF5FTrrbXHgpgk
Z3hs0tzgmQxVYu579pMe6XmpRaehRANCAASVslZzpk8WgOU7RPRlCIiE7D3KhI0F
tBSVA0jPC8DHO2aoUjLfFzkAU6PovpbJTgCy6qoSqvkEJLeDRJlNQYqk
-----END PRIVATE KEY-----
";

/// Starts an HTTPS server on 127.0.0.1 that requires a client certificate from the test
/// CA and answers every request with `body` (JSON). Returns its port and the request
/// lines it answered.
fn tls_server(body: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA_PEM.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(SERVER_PEM.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let log = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, body, log) = (config.clone(), body.clone(), log.clone());
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                if tls.write_all(reply.as_bytes()).is_ok() {
                    log.lock()
                        .unwrap()
                        .push(head.lines().next().unwrap_or_default().to_owned());
                }
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, answered)
}

#[tokio::test]
async fn mutual_tls_with_ca_file_and_client_certificate() {
    let dir = setup();
    let out = dir.path().join("out.json");
    let files: HashMap<&str, PathBuf> = [("ca", CA_PEM), ("cert", CLIENT_PEM), ("key", CLIENT_KEY)]
        .into_iter()
        .map(|(name, text)| {
            let path = dir.path().join(format!("{name}.pem"));
            std::fs::write(&path, text).unwrap();
            (name, path)
        })
        .collect();
    let (port, answered) = tls_server(json!({"employees": people(0..3)}).to_string());
    let url = format!("https://127.0.0.1:{port}/people");
    let client_auth = json!({"client_cert_file": files["cert"], "client_key_file": files["key"]});

    let good = spec(&url, &json!({"ca_file": files["ca"], "auth": client_auth}));
    let got = fetch(&good, None, 1000, &out).await.unwrap();
    assert_eq!((got.records, got.pages), (3, 1));
    assert_eq!(written(&out), people(0..3));
    assert_eq!(*answered.lock().unwrap(), ["GET /people HTTP/1.1"]);

    // The test CA is not among the platform's roots.
    let unknown_ca = spec(&url, &json!({"auth": client_auth}));
    let e = fetch(&unknown_ca, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Connect(_)), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "acme/dmz: page 1: cannot reach 127.0.0.1:{port}: "
        )),
        "{e}"
    );
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(!out.exists());

    // Without the client certificate the server hangs up.
    let anonymous = spec(&url, &json!({"ca_file": files["ca"]}));
    let e = fetch(&anonymous, None, 1000, &out).await.unwrap_err();
    assert!(matches!(e, SourceError::Connect(_)), "{e:?}");
    assert!(!out.exists());
    assert_eq!(
        answered.lock().unwrap().len(),
        1,
        "only the good client was answered"
    );
}
