//! `roster mapping check`: how a file would be read, before anything is imported: what
//! each column feeds and why, and the first rows as Roster reads them.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use roster_shared::model::envelope::Format;
use roster_shared::stage::NoProgress;

use crate::ad::{self, is_type_line};
use crate::csv_input::{records, sniff_delimiter};
use crate::decode;
use crate::error::{RejectReason, Rejection};
use crate::headers::{HeaderMap, Role, is_ad_export};
use crate::rows::{self, RowOutcome, RowRules};
use crate::{ParseOptions, parse};

/// One column, as it would be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRead {
    /// Its header, as written.
    pub header: String,
    /// What it feeds.
    pub role: Role,
    /// What decided that ([`HeaderMap::explain`]).
    pub why: &'static str,
}

/// How a file would be read.
#[derive(Debug)]
pub struct Preview {
    /// The encoding it is read in.
    pub encoding: &'static str,
    /// Whether it starts with a byte-order mark.
    pub bom: bool,
    /// Its delimiter (`None`: JSON or SOAP, whose keys are read like headers).
    pub delimiter: Option<u8>,
    /// Whether it is read as an Active Directory export.
    pub ad: bool,
    /// Its columns, in order (a delimited file's).
    pub columns: Vec<ColumnRead>,
    /// Why its header would refuse the file (no email column, two for one field).
    pub refusal: Option<String>,
    /// The first rows as read: the line each starts on, and what it gives.
    pub rows: Vec<(Option<u64>, RowOutcome)>,
}

/// Reads the header and the first `rows` rows of the file at `path` as [`parse`] would
/// with `options` (a JSON or SOAP file is parsed whole, and its first people by email
/// shown). `Err`: the file would be refused before its header (not text, say).
pub fn preview(path: &Path, options: &ParseOptions, rows: usize) -> Result<Preview, Rejection> {
    let reject = |reason: RejectReason| Rejection {
        file: options.file_name.clone(),
        reason,
    };
    let open = || -> Result<Box<dyn Read + Send>, Rejection> {
        Ok(Box::new(
            File::open(path).map_err(|e| reject(RejectReason::Io(e)))?,
        ))
    };
    let decoded = decode::decode(open()?, options.encoding.as_deref()).map_err(reject)?;
    let first = decoded
        .head
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let delimited = match options.format {
        Format::Auto => !matches!(first, Some(b'{' | b'[' | b'<')),
        Format::Csv | Format::Tsv | Format::People | Format::ContactDetails => true,
        Format::Json | Format::Soap => false,
        Format::Bundle => {
            return Err(reject(RejectReason::Bundle(
                "mapping check reads one people file: check the bundle's users file itself".into(),
            )));
        }
    };
    let (encoding, bom) = (decoded.encoding, decoded.bom);
    if !delimited {
        drop(decoded);
        return preview_records(open()?, options, rows);
    }
    let delimiter = match options.format {
        Format::Tsv => b'\t',
        _ => sniff_delimiter(&decoded.head),
    };
    let headers = HeaderMap::new(&options.mappings);
    let (decoded, managers) =
        ad::managers(decoded, delimiter, &headers, options.spill_dir.as_deref()).map_err(reject)?;
    let (mut reader, watch) = records(decoded.reader, delimiter, options.limits.max_record_lines);
    let csv_error = |error: csv::Error| {
        reject(RejectReason::Csv {
            line: error.position().map(|p| watch.line_at(p.byte())),
            error,
        })
    };
    let mut record = csv::ByteRecord::new();
    let mut preview = Preview {
        encoding,
        bom,
        delimiter: Some(delimiter),
        ad: false,
        columns: Vec::new(),
        refusal: None,
        rows: Vec::new(),
    };
    loop {
        if !reader.read_byte_record(&mut record).map_err(csv_error)? {
            preview.refusal = Some(RejectReason::Empty.to_string());
            return Ok(preview);
        }
        if !record.get(0).is_some_and(is_type_line) {
            break;
        }
    }
    let names: Vec<String> = record
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    preview.ad = is_ad_export(&refs);
    let roles = headers.roles(&refs);
    preview.columns = names
        .iter()
        .enumerate()
        .map(|(i, header)| {
            let (role, why) = headers.explain(header, preview.ad);
            match &roles {
                Ok(roles) if roles[i] != role => ColumnRead {
                    header: header.clone(),
                    role: roles[i].clone(),
                    why: "a reject file's own column",
                },
                _ => ColumnRead {
                    header: header.clone(),
                    role,
                    why,
                },
            }
        })
        .collect();
    let roles = match roles {
        Ok(roles) => roles,
        Err(why) => {
            preview.refusal = Some(why.to_string());
            return Ok(preview);
        }
    };
    let rules = RowRules {
        ad: preview.ad,
        managers: managers.map(std::sync::Arc::new),
        ..RowRules::new(options.limits, &options.organizations, &options.value_rules)
    };
    let maps = rules.maps(&names, &roles);
    while preview.rows.len() < rows && reader.read_byte_record(&mut record).map_err(csv_error)? {
        let line = watch.line_at(record.position().map_or(0, csv::Position::byte));
        let values: Vec<String> = record
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let v = String::from_utf8_lossy(v);
                rows::rewrite_with(maps.get(i).and_then(Option::as_ref), &v).to_owned()
            })
            .collect();
        let outcome = if values.len() == roles.len() {
            rows::build(
                roles
                    .iter()
                    .zip(&names)
                    .zip(&values)
                    .map(|((r, n), v)| (r, n.as_str(), v.as_str())),
                Some(line),
                &rules,
            )
        } else {
            RowOutcome::Rejected {
                email: None,
                errors: vec![roster_shared::model::envelope::RowError::new(
                    Some(line),
                    None,
                    format!(
                        "expected {} fields (as in the header), found {}",
                        roles.len(),
                        values.len()
                    ),
                )],
            }
        };
        if outcome != RowOutcome::Blank {
            preview.rows.push((Some(line), outcome));
        }
    }
    Ok(preview)
}

/// [`preview`] of a JSON or SOAP file: parsed whole, its first `rows` people by email.
fn preview_records(
    input: Box<dyn Read + Send>,
    options: &ParseOptions,
    rows: usize,
) -> Result<Preview, Rejection> {
    let parsed = parse(input, options, &NoProgress)?;
    let mut out = Vec::new();
    parsed.write_snapshot(&mut out).map_err(|e| Rejection {
        file: options.file_name.clone(),
        reason: RejectReason::Scratch(e),
    })?;
    let people = roster_shared::model::snapshot::SnapshotReader::new(&out[..])
        .filter_map(Result::ok)
        .filter(|e| !e.protected)
        .take(rows)
        .filter_map(|e| e.person().ok())
        .map(|p| (None, RowOutcome::Person(p)));
    Ok(Preview {
        encoding: "UTF-8",
        bom: false,
        delimiter: None,
        ad: false,
        columns: Vec::new(),
        refusal: None,
        rows: people.collect(),
    })
}
