//! `roster directory`: a tenant's people, sorted by email, as CSV or JSON.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures::TryStreamExt;
use roster_shared::config::StoreSettings;
use roster_shared::db::people;
use roster_shared::model::ids::TenantId;
use roster_shared::model::person::{Field, Person};
use serde_json::{Map, Value};

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
            out.write_all(b"[")?;
            let mut first = true;
            while let Some(p) = rows.try_next().await? {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                out.write_all(b"\n")?;
                serde_json::to_writer(&mut out, &person_json(&p))?;
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
