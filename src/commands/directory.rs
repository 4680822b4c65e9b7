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

use crate::App;

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
    let app = App::open_local(store).await?;
    let mut rows = Box::pin(people::directory(&app.services.db, &args.tenant, args.all).await?);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match args.format {
        DirectoryFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(Field::ALL.iter().map(|f| f.name()))?;
            while let Some(p) = rows.try_next().await? {
                csv.write_record(Field::ALL.iter().map(|f| p.display(*f)))?;
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
