//! The web-service JSON shape: `{"employees": [ {...}, ... ]}` (or `users`, `people`,
//! `members`, `data`, `records`, `items`, `results`, `value`), or a bare array of objects.
//! Streamed record by record; keys are matched like CSV headers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufReader, Read};
use std::rc::Rc;

use roster_shared::model::envelope::{Covered, RowError, Severity};
use roster_shared::stage::Progress;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::collect::Collector;
use crate::decode::Decoded;
use crate::error::RejectReason;
use crate::headers::{HeaderMap, Role};
use crate::rows::{self, RowOutcome, RowRules};

/// Keys of a top-level object that hold the list of people.
const LIST_KEYS: &[&str] = &[
    "employees",
    "users",
    "people",
    "members",
    "data",
    "records",
    "items",
    "results",
    "value",
];

/// Counts newlines in the bytes handed to the JSON reader, so each record can be given
/// the line it starts on.
struct LineCounter<R> {
    inner: R,
    newlines: Rc<Cell<u64>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let count = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.newlines.set(self.newlines.get() + count);
        Ok(n)
    }
}

struct Ctx<'a> {
    headers: &'a HeaderMap,
    rules: &'a RowRules,
    roles: RefCell<HashMap<String, Role>>,
    out: RefCell<&'a mut Collector>,
    newlines: Rc<Cell<u64>>,
    progress: &'a dyn Progress,
    lists: Cell<usize>,
    refusal: RefCell<Option<RejectReason>>,
}

impl Ctx<'_> {
    fn role(&self, key: &str) -> Role {
        self.roles
            .borrow_mut()
            .entry(key.to_owned())
            .or_insert_with(|| self.headers.role(key))
            .clone()
    }

    fn record(&self, list: &str, index: usize, line: u64, value: Value) {
        let path = format!("{list}[{index}]");
        let Value::Object(map) = value else {
            self.out.borrow_mut().reject(RowError {
                line: Some(line),
                column: Some(path),
                message: "expected an object".into(),
                severity: Severity::Error,
            });
            return;
        };
        let mut cells: Vec<(Role, String, String)> = Vec::with_capacity(map.len());
        let mut errors = Vec::new();
        let mut seen: HashMap<Role, String> = HashMap::new();
        for (key, value) in map {
            let role = self.role(&key);
            let label = format!("{path}.{key}");
            if !matches!(role, Role::Ignore | Role::Extra(_))
                && let Some(other) = seen.insert(role.clone(), key.clone())
            {
                errors.push(RowError {
                    line: Some(line),
                    column: Some(label.clone()),
                    message: format!("keys {other:?} and {key:?} mean the same field"),
                    severity: Severity::Error,
                });
            }
            let text = match value {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                nested @ (Value::Array(_) | Value::Object(_)) => {
                    if matches!(role, Role::Extra(_)) {
                        nested.to_string()
                    } else {
                        errors.push(RowError {
                            line: Some(line),
                            column: Some(label.clone()),
                            message: "expected text, found a list or object".into(),
                            severity: Severity::Error,
                        });
                        continue;
                    }
                }
            };
            let text = self.rules.rewrite(&key, &role, text);
            cells.push((role, label, text));
        }
        let outcome = rows::build(
            cells.iter().map(|(r, l, v)| (r, l.as_str(), v.as_str())),
            Some(line),
            self.rules,
        );
        let outcome = match (outcome, errors.is_empty()) {
            (
                RowOutcome::Rejected {
                    email,
                    errors: mut e,
                },
                _,
            ) => {
                for err in &mut e {
                    err.column.get_or_insert_with(|| format!("{path}.email"));
                }
                e.extend(errors);
                RowOutcome::Rejected { email, errors: e }
            }
            (RowOutcome::Person(p), false) => RowOutcome::Rejected {
                email: Some(p.email),
                errors,
            },
            (other, _) => other,
        };
        let mut out = self.out.borrow_mut();
        out.push(outcome, line);
        if out.rows_read().is_multiple_of(10_000) {
            self.progress.rows_read(10_000);
        }
    }
}

struct Records<'c, 'a> {
    ctx: &'c Ctx<'a>,
    list: &'c str,
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of employee objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.ctx.lists.set(self.ctx.lists.get() + 1);
        let mut index = 0;
        while let Some((line, value)) = seq.next_element_seed(Record(self.ctx))? {
            self.ctx.record(self.list, index, line, value);
            index += 1;
            if let Some(refusal) = self.ctx.out.borrow().over_limit() {
                // Stop reading: the refusal, not this placeholder, is what `read` returns.
                *self.ctx.refusal.borrow_mut() = Some(refusal);
                return Err(<A::Error as serde::de::Error>::custom("over the row limit"));
            }
        }
        Ok(())
    }
}

struct Record<'c, 'a>(&'c Ctx<'a>);

impl<'de> DeserializeSeed<'de> for Record<'_, '_> {
    type Value = (u64, Value);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(u64, Value), D::Error> {
        // The reader has consumed up to the record's first byte: its line is here.
        let line = self.0.newlines.get() + 1;
        let value = <Value as serde::Deserialize>::deserialize(d)?;
        Ok((line, value))
    }
}

struct Top<'c, 'a>(&'c Ctx<'a>);

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an \"employees\" list, or a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Records {
            ctx: self.0,
            list: "",
        }
        .visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if let Some(list) = LIST_KEYS.iter().find(|k| k.eq_ignore_ascii_case(&key)) {
                map.next_value_seed(Records { ctx: self.0, list })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Reads every record into `out`; returns what the records' keys feed (all keys met in
/// any record). `Err` rejects the whole file, with the reason.
pub fn read(
    decoded: Decoded,
    headers: &HeaderMap,
    rules: &RowRules,
    out: &mut Collector,
    progress: &dyn Progress,
) -> Result<Covered, RejectReason> {
    let newlines = Rc::new(Cell::new(0));
    let reader = LineCounter {
        inner: BufReader::with_capacity(1 << 16, decoded.reader),
        newlines: newlines.clone(),
    };
    let ctx = Ctx {
        headers,
        rules,
        roles: RefCell::default(),
        out: RefCell::new(out),
        newlines,
        progress,
        lists: Cell::new(0),
        refusal: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let read = de.deserialize_any(Top(&ctx)).and_then(|()| de.end());
    if let Some(refusal) = ctx.refusal.take() {
        return Err(refusal);
    }
    read.map_err(|error| RejectReason::Json { error })?;
    if ctx.lists.get() == 0 {
        return Err(RejectReason::NoList {
            keys: LIST_KEYS.join(", "),
        });
    }
    // Keys are resolved as they are met: what they all feed is what the file covers.
    Ok(crate::headers::covered(ctx.roles.borrow().values()))
}
