//! Webhooks end to end: a real HTTP receiver on loopback gets a tenant's run outcomes and
//! directory events, signed the Standard Webhooks way (checked here with the hmac crate
//! from the raw body received), retried after a 500, a slow endpoint not delaying a fast
//! one, `employee.created` saying whether to invite; `roster webhooks deliveries` lists
//! every delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::harness::{Install, STAGES, tenant};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    endpoint: String,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Receiver {
    got: Vec<Received>,
    /// Endpoints that answered their first 500 already.
    failed_once: Vec<String>,
}

type Shared = Arc<Mutex<Receiver>>;

/// `/flaky-*` answers 500 to its first request, `/slow-*` takes 30 s, others 200 at once.
async fn hook(
    State(s): State<Shared>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let first_failure = {
        let mut s = s.lock().unwrap();
        s.got.push(Received {
            endpoint: endpoint.clone(),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: body.to_vec(),
        });
        let first = endpoint.starts_with("flaky") && !s.failed_once.contains(&endpoint);
        if first {
            s.failed_once.push(endpoint.clone());
        }
        first
    };
    if endpoint.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if first_failure {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

/// Starts the receiver on a free loopback port; its base URL.
fn start_receiver(shared: Shared) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/{endpoint}", axum::routing::post(hook))
                .with_state(shared);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

/// A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
fn new_secret() -> String {
    let bytes: Vec<u8> = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    format!("whsec_{}", BASE64.encode(bytes))
}

/// Checks the request's signature as a receiver would, independently of Roster's code:
/// HMAC-SHA256 keyed with the secret's decoded bytes over `id.timestamp.body`.
fn assert_signed(r: &Received, secret: &str) {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(r.id.as_bytes());
    mac.update(b".");
    mac.update(r.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert!(
        r.signature.split(' ').any(|s| s == expected),
        "bad signature on {}: {} (expected {expected})",
        r.id,
        r.signature
    );
    let ts: i64 = r.timestamp.parse().expect("unix seconds");
    assert!(
        (Utc::now().timestamp() - ts).abs() < 300,
        "timestamp {ts} is not now"
    );
    assert!(r.id.starts_with("msg_"), "{}", r.id);
}

fn people(n: usize) -> String {
    let mut out = String::from("Email,Name\n");
    for i in 0..n {
        out.push_str(&format!("p{i}@x.com,Person {i}\n"));
    }
    out
}

/// The whole story on one install (embedded: a `roster serve` sends while `roster
/// import` runs the imports; distributed: the stage processes send).
fn webhooks_story(mut i: Install) {
    let shared: Shared = Arc::default();
    let base = start_receiver(Arc::clone(&shared));
    let (a, b) = (tenant("hooka"), tenant("hookb"));
    let (secret_a, secret_slow, secret_b) = (new_secret(), new_secret(), new_secret());
    for (k, v) in [
        ("HOOK_A_SECRET", secret_a.as_str()),
        ("HOOK_SLOW_SECRET", secret_slow.as_str()),
        ("HOOK_B_SECRET", secret_b.as_str()),
    ] {
        i.set_env(k, v);
    }
    let flaky = format!("flaky-{a}");
    let slow = format!("slow-{a}");
    let fast_b = format!("fast-{b}");
    let file = i.file(
        "tenants.yaml",
        format!(
            "tenants:\n  {a}:\n    webhooks:\n      - {{url: \"{base}/{flaky}\", secret_env: HOOK_A_SECRET}}\n      \
             - {{url: \"{base}/{slow}\", secret_env: HOOK_SLOW_SECRET}}\n    invite_new_users: true\n  \
             {b}:\n    webhooks:\n      - {{url: \"{base}/{fast_b}\", secret_env: HOOK_B_SECRET}}\n    \
             invite_new_users: true\n    invite_on_first_import: true\n"
        ),
    );
    let ran = i.roster(&["tenants", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    if i.backend == "embedded" {
        i.start_process("serve", "roster", &["serve"]);
    } else {
        for stage in STAGES {
            i.start_stage(stage);
        }
    }

    // A: the first import (no invites), a second with a new person and a bad row
    // (invite), a mass deactivation (held), a file without emails (rejected).
    i.import_ok(&a, &i.file("a1.csv", people(40)), &[]);
    let second = format!("{}p40@x.com,Person 40\n,No Mail\n", people(40));
    let s = i.import_ok(&a, &i.file("a2.csv", second), &[]);
    assert_eq!(
        (s["created"].as_u64(), s["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let (code, s) = i.import(&a, &i.file("a3.csv", people(6)), &[]);
    assert_eq!((code, s["status"].as_str()), (1, Some("held")), "{s:#}");
    let (code, s) = i.import(&a, &i.file("a4.csv", "Name\nX\n"), &[]);
    assert_eq!((code, s["status"].as_str()), (2, Some("rejected")), "{s:#}");
    // B: invites even on its first import.
    i.import_ok(&b, &i.file("b1.csv", people(2)), &[]);

    let of = |endpoint: &str| -> Vec<Received> {
        let s = shared.lock().unwrap();
        s.got
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    };
    let types = |got: &[Received]| -> Vec<String> {
        got.iter()
            .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let wanted = [
        "run.applied",
        "run.held",
        "run.rejected",
        "employee.created",
    ];
    let started = Instant::now();
    i.wait_until(
        "A's flaky endpoint to get every kind of message",
        Duration::from_secs(60),
        || {
            let got = types(&of(&flaky));
            wanted.iter().all(|w| got.iter().any(|g| g == w))
                && got.iter().filter(|g| *g == "run.applied").count() == 2
        },
    );
    i.wait_until(
        "B's endpoint to get its messages",
        Duration::from_secs(60),
        || {
            let got = types(&of(&fast_b));
            got.contains(&"run.applied".to_owned()) && got.contains(&"employee.created".to_owned())
        },
    );
    // Every request is signed with its endpoint's secret.
    for r in of(&flaky) {
        assert_signed(&r, &secret_a);
    }
    for r in of(&fast_b) {
        assert_signed(&r, &secret_b);
    }
    for r in of(&slow) {
        assert_signed(&r, &secret_slow);
    }

    // The first message was refused (500) and came again under the same id.
    let first = of(&flaky)[0].clone();
    i.wait_until(
        "the refused message to come again",
        Duration::from_secs(30),
        || of(&flaky).iter().filter(|r| r.id == first.id).count() >= 2,
    );
    // And the slow endpoint's first attempt to time out.
    i.wait_until(
        "a slow attempt to time out",
        Duration::from_secs(30),
        || {
            let list = i
                .roster(&["webhooks", "deliveries", "--tenant", &a, "--json"])
                .json();
            list.as_array().unwrap().iter().any(|d| {
                d["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no answer within")
            })
        },
    );
    let got = of(&flaky);
    assert_eq!(
        got.iter().filter(|r| r.id == first.id).count(),
        2,
        "the message answered 500 is retried under its id"
    );
    // Distinct messages once delivered: drop the repeat.
    let mut seen = std::collections::HashSet::new();
    let bodies: Vec<Value> = got
        .iter()
        .filter(|r| seen.insert(r.id.clone()))
        .map(Received::json)
        .collect();

    // Run outcomes with their counts and row errors.
    let applied: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "run.applied")
        .collect();
    let second = applied
        .iter()
        .find(|b| b["data"]["counts"]["created"] == 1)
        .expect("the second import announced");
    assert_eq!(second["data"]["tenant"], a.as_str());
    assert_eq!(second["data"]["counts"]["rejected"], 1);
    assert_eq!(second["data"]["file_name"], "a2.csv");
    let errors = second["data"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{second:#}");
    assert_eq!(errors[0]["line"], 43);
    assert_eq!(errors[0]["column"], "Email");
    let first_run = applied
        .iter()
        .find(|b| b["data"]["counts"]["created"] == 40)
        .expect("the first import announced");
    assert_eq!(first_run["data"]["state"], "applied");
    let held = bodies.iter().find(|b| b["type"] == "run.held").unwrap();
    assert_eq!(held["data"]["state"], "held");
    assert!(
        held["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("would deactivate 35 of 41"),
        "{held:#}"
    );
    let rejected = bodies.iter().find(|b| b["type"] == "run.rejected").unwrap();
    let why = format!(
        "{} {}",
        rejected["data"]["reason"].as_str().unwrap_or_default(),
        rejected["data"]["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    );
    assert!(why.contains("no email column"), "{rejected:#}");

    // Directory events: the first import asks for no invite, the second does.
    let created: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["type"] == "employee.created")
        .flat_map(|b| b["data"]["events"].as_array().unwrap())
        .collect();
    assert_eq!(created.len(), 41, "one event per new person");
    for e in &created {
        let new_one = e["email"] == "p40@x.com";
        assert_eq!(e["invite"], new_one, "{e:#}");
        assert_eq!(e["tenant"], a.as_str());
    }
    // B's tenant invites on its first import.
    let b_created: Vec<Value> = of(&fast_b)
        .iter()
        .map(Received::json)
        .filter(|b| b["type"] == "employee.created")
        .flat_map(|b| b["data"]["events"].as_array().unwrap().clone())
        .collect();
    assert_eq!(b_created.len(), 2);
    assert!(
        b_created.iter().all(|e| e["invite"] == true),
        "{b_created:#?}"
    );

    // The listing: every delivery, with its attempts.
    let list = i
        .roster(&["webhooks", "deliveries", "--tenant", &a, "--json"])
        .json();
    let list = list.as_array().unwrap();
    let retried = list
        .iter()
        .find(|d| d["id"] == first.id.as_str())
        .expect("the retried delivery is listed");
    assert_eq!(retried["status"], "delivered", "{retried:#}");
    assert_eq!(retried["attempts"], 2);
    assert_eq!(retried["last_code"], 204);
    // A slow endpoint delayed none of the fast one's messages: each went on its first
    // attempt within moments of being recorded, while the slow one's time out.
    let mut fast_count = 0;
    for d in list
        .iter()
        .filter(|d| d["url"] == format!("{base}/{flaky}"))
    {
        assert_eq!(d["status"], "delivered", "{d:#}");
        if d["attempts"] == 1 {
            let at = |k: &str| d[k].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            let took = at("delivered_at") - at("created_at");
            assert!(
                took < chrono::Duration::milliseconds(3000),
                "a fast delivery waited {took} behind the slow endpoint: {d:#}"
            );
        }
        fast_count += 1;
    }
    assert!(fast_count >= 6, "{list:#?}");
    let slow_ones: Vec<&Value> = list
        .iter()
        .filter(|d| d["url"] == format!("{base}/{slow}"))
        .collect();
    assert_eq!(
        slow_ones.len(),
        fast_count,
        "every message goes to both endpoints"
    );
    assert!(
        slow_ones.iter().all(|d| d["status"] == "pending"),
        "{slow_ones:#?}"
    );
    assert!(
        slow_ones.iter().any(|d| d["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no answer within")),
        "{slow_ones:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let text = i.roster(&["webhooks", "deliveries", "--tenant", &a]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .starts_with("ID\tEVENT\tURL\tSTATUS\tATTEMPTS\tLAST_CODE")
    );
    assert!(text.stdout.contains(&first.id), "{}", text.stdout);
    // B's listing holds B's alone.
    let list_b = i
        .roster(&["webhooks", "deliveries", "--tenant", &b, "--json"])
        .json();
    assert!(
        list_b
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["url"] == format!("{base}/{fast_b}"))
    );
    // The secrets are nowhere Roster writes.
    for secret in [&secret_a, &secret_slow, &secret_b] {
        i.assert_no_secret(secret, &[&text.stdout]);
    }
}

/// Settings that make the test quick: retries after 300 ms, a request times out after 2 s.
const QUICK: [(&str, &str); 3] = [
    ("ROSTER_WEBHOOK_BACKOFF_MS", "300"),
    ("ROSTER_WEBHOOK_TIMEOUT_MS", "2000"),
    ("ROSTER_WEBHOOK_INTERVAL_MS", "100"),
];

#[test]
fn webhooks_are_signed_retried_and_never_held_up_embedded() {
    let mut i = Install::embedded();
    for (k, v) in QUICK {
        i.set_env(k, v);
    }
    webhooks_story(i);
}

#[test]
fn webhooks_are_signed_retried_and_never_held_up_distributed() {
    // The stage processes start once the story has set the secrets in their environment.
    webhooks_story(Install::on_broker(&QUICK, "distributed"));
}
