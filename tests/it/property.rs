//! The differ and writer together obey the sync law: after a full import of `snapshot`
//! over any stored directory, the directory is exactly `snapshot` for the people in it,
//! and everyone else stored is kept but inactive with their fields untouched.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use proptest::prelude::*;
use roster_shared::db::people;
use roster_shared::model::envelope::SyncMode;
use roster_shared::model::ids::TenantId;

use crate::pipeline::{app, import_with, settings};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    first: String,
    title: String,
    office: String,
    active: bool,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop::sample::select(vec!["", "Ann", "Bob"]),
        prop::sample::select(vec!["", "Engineer", "Lead"]),
        prop::sample::select(vec!["HQ", "Paris"]),
        any::<bool>(),
    )
        .prop_map(|(f, t, o, a)| Row {
            first: f.into(),
            title: t.into(),
            office: o.into(),
            active: a,
        })
}

/// People keyed by email drawn from a pool of 10, so stored and snapshot overlap.
fn directory() -> impl Strategy<Value = BTreeMap<String, Row>> {
    prop::collection::btree_map((0..10u8).prop_map(|n| format!("p{n}@x.com")), row(), 0..10)
}

fn csv(rows: &BTreeMap<String, Row>) -> String {
    let mut out = String::from("Email,First Name,Title,Office,Status\n");
    // Reverse order: the parser must sort.
    for (email, r) in rows.iter().rev() {
        let status = if r.active { "active" } else { "inactive" };
        out.push_str(&format!(
            "{email},{},{},{},{status}\n",
            r.first, r.title, r.office
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn applying_the_diff_yields_the_snapshot(stored in directory(), snapshot in directory()) {
        prop_assume!(!snapshot.is_empty());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let got = rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (app, _) = app(&dir).await;
            // The brake is a separate safety valve; the law is about the plan itself.
            let mut settings = settings();
            settings.brake.deactivate_floor = u64::MAX;
            let t = TenantId::new("prop").unwrap();
            if !stored.is_empty() {
                import_with(&app, &settings, &t, &csv(&stored), SyncMode::Full).await;
            }
            import_with(&app, &settings, &t, &csv(&snapshot), SyncMode::Full).await;
            let all: Vec<_> = people::directory(&app.services.db, &t, true)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            all
        });
        let mut expected: BTreeMap<String, Row> = stored
            .iter()
            .map(|(e, r)| (e.clone(), Row { active: false, ..r.clone() }))
            .collect();
        expected.extend(snapshot.clone());
        let got: BTreeMap<String, Row> = got
            .into_iter()
            .map(|p| {
                (p.email.clone(), Row {
                    first: p.first_name.unwrap_or_default(),
                    title: p.job_title.unwrap_or_default(),
                    office: p.group.unwrap_or_default(),
                    active: p.active,
                })
            })
            .collect();
        prop_assert_eq!(got, expected);
    }
}
