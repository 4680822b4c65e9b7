//! `roster directory`: a tenant's people, sorted by email, as CSV or JSON (where each
//! person also lists their groups and contact details).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures::TryStreamExt;
use roster_shared::config::StoreSettings;
use roster_shared::db::people;
use roster_shared::model::ids::TenantId;
use roster_shared::model::person::{Field, Person};
use std::collections::BTreeMap;

use roster_shared::db::related;
use roster_shared::model::related::Contact;
use serde_json::{Map, Value, json};

use crate::app::read_db;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectoryFormat {
    /// A header row, then one row per person.
    Csv,
    /// A JSON array of people.
    Json,
}

/// Arguments of `roster directory`.
#[derive(Debug, Args)]
pub struct DirectoryArgs {
    /// The tenant.
    #[arg(long, value_parser = super::tenant_arg)]
    pub tenant: TenantId,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: DirectoryFormat,
    /// Include inactive people.
    #[arg(long)]
    pub all: bool,
    /// CSV: write every value as stored. By default a value that a spreadsheet would run
    /// as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
    /// written with a leading `'`, the OWASP rule against formula injection.
    #[arg(long)]
    pub raw: bool,
}

/// `value` made safe to open in a spreadsheet: one that would be read as a formula gets
/// a leading `'`.
pub fn neutralise(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// A person as one JSON object: every canonical field (null when absent), then `extra`.
pub fn person_json(p: &Person) -> Value {
    let mut map = Map::new();
    for field in Field::ALL {
        let value = match field {
            Field::Email => Value::String(p.email.clone()),
            Field::Active => Value::Bool(p.active),
            other => p
                .text(*other)
                .map_or(Value::Null, |v| Value::String(v.to_owned())),
        };
        map.insert(field.name().to_owned(), value);
    }
    map.insert(
        "extra".into(),
        serde_json::to_value(&p.extra).expect("a map of strings"),
    );
    Value::Object(map)
}

/// A contact detail as the directory shows it: `id`, `protocol`, `label`, `uri`,
/// `address` (an object of `label`, `address`, `city`, `state`, `zip`, `country`, or
/// null) and `integration`.
pub fn contact_json(c: &Contact) -> Value {
    json!({
        "id": c.id,
        "protocol": c.content.protocol,
        "label": c.content.label,
        "uri": c.content.uri,
        "address": c.content.address,
        "integration": c.integration,
    })
}

/// Runs `roster directory`.
pub async fn run(store: StoreSettings, args: DirectoryArgs) -> anyhow::Result<ExitCode> {
    let db = read_db(&store).await?;
    let mut rows = Box::pin(people::directory(&db, &args.tenant, args.all).await?);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        DirectoryFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(Field::ALL.iter().map(|f| f.name()))?;
            while let Some(p) = rows.try_next().await? {
                if args.raw {
                    csv.write_record(Field::ALL.iter().map(|f| p.display(*f)))?;
                } else {
                    csv.write_record(
                        Field::ALL
                            .iter()
                            .map(|f| neutralise(p.display(*f)))
                            .map(std::borrow::Cow::into_owned),
                    )?;
                }
            }
            csv.flush()?;
        }
        DirectoryFormat::Json => {
            let mut groups = related::groups_by_person(db.conn(), &args.tenant).await?;
            let mut contacts: BTreeMap<String, Vec<Contact>> = BTreeMap::new();
            for c in related::contacts(db.conn(), &args.tenant, None).await? {
                contacts.entry(c.person.clone()).or_default().push(c);
            }
            out.write_all(b"[")?;
            let mut first = true;
            while let Some(p) = rows.try_next().await? {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                out.write_all(b"\n")?;
                let mut json = person_json(&p);
                let map = json.as_object_mut().expect("a person is an object");
                let groups = groups.remove(&p.email).unwrap_or_default();
                map.insert(
                    "groups".into(),
                    groups
                        .into_iter()
                        .map(|(g, manager)| json!({"id": g.id, "name": g.name, "manager": manager}))
                        .collect(),
                );
                let contacts = contacts.remove(&p.email).unwrap_or_default();
                map.insert(
                    "contacts".into(),
                    contacts.iter().map(contact_json).collect(),
                );
                serde_json::to_writer(&mut out, &json)?;
            }
            out.write_all(b"\n]\n")?;
        }
    }
    out.flush()?;
    Ok(super::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        for v in ["=1+2", "+1 555", "-x", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(v), format!("'{v}"));
        }
        for v in ["", "plain", "a=b", "555-1234"] {
            assert_eq!(neutralise(v), v);
        }
    }
}
