//! The normalised snapshot file the parser writes and the differ reads: one person per
//! line, sorted by email, each line led by the fields the differ compares so an unchanged
//! person is never deserialised.
//!
//! Line layout: `<content hash, 16 hex digits>\t<flag>\t<email>\t<fields>[\t<extras>]\n`,
//! with flag `a` (active), `i` (inactive) or `r`: a row of this email was rejected, so the
//! person is left as stored (a full sync must not deactivate someone whose row merely
//! failed to read). `<fields>` is a JSON array of the text fields in [`RecordField::TEXT`] order
//! (`null` when absent, trailing absent ones left out); `<extras>`, only when the person
//! has extra attributes, is a JSON object of them. Positional fields keep a snapshot near
//! the size of the file it came from (naming every field in every line made it 2.5 times
//! that). Tabs cannot occur unescaped in JSON nor in a normalised email, so the split is
//! exact.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::model::change::{Change, ChangeKind, RowState};
use crate::model::person::Person;
use crate::model::record::{Record, RecordField};

/// Appends one snapshot line for `record` to `out`.
pub fn encode_line<R: Record>(record: &R, out: &mut Vec<u8>) {
    let state = RowState::of(record);
    write!(
        out,
        "{:016x}\t{}\t{}\t",
        state.hash as u64,
        if state.active { 'a' } else { 'i' },
        record.key()
    )
    .expect("writing to a Vec cannot fail");
    let texts: Vec<Option<&str>> = R::Field::TEXT.iter().map(|f| record.text(*f)).collect();
    let used = texts
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |last| last + 1);
    serde_json::to_writer(&mut *out, &texts[..used]).expect("strings always serialise");
    if !record.extra().is_empty() {
        out.push(b'\t');
        serde_json::to_writer(&mut *out, record.extra()).expect("strings always serialise");
    }
    out.push(b'\n');
}

/// Appends the line that protects `email` (a rejected row) to `out`.
pub fn encode_protected(email: &str, out: &mut Vec<u8>) {
    writeln!(out, "{:016x}\tr\t{email}\t[]", 0).expect("writing to a Vec cannot fail");
}

/// The email of an encoded line (as written by [`encode_line`]).
pub fn line_email(line: &[u8]) -> &[u8] {
    let rest = &line[19..];
    let end = rest.iter().position(|&b| b == b'\t').unwrap_or(rest.len());
    &rest[..end]
}

/// Why a snapshot could not be read. A snapshot is written by Roster itself, so any of
/// these means corruption or a bug, never bad customer input.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed.
    #[error("reading snapshot: {0}")]
    Io(#[from] io::Error),
    /// A line is not in the snapshot layout.
    #[error("snapshot line {line} is malformed: {why}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        why: String,
    },
    /// Lines are not strictly ascending by email.
    #[error("snapshot line {line} is out of order")]
    Unsorted {
        /// 1-based line number.
        line: u64,
    },
}

/// One line of a snapshot, with the person left encoded until asked for.
#[derive(Debug, Clone)]
pub struct SnapshotEntry {
    /// The person's state (content hash and activity).
    pub state: RowState,
    /// The key.
    pub email: String,
    /// Whether this only protects a person whose row was rejected (no record; leave the
    /// stored person as it is).
    pub protected: bool,
    record: Vec<u8>,
    line: u64,
}

impl SnapshotEntry {
    /// The entry of `record`, as [`encode_line`] writes it (line 0: made, not read).
    pub fn of<R: Record>(record: &R) -> SnapshotEntry {
        let mut line = Vec::new();
        encode_line(record, &mut line);
        SnapshotReader::new(&line[..])
            .next_ref()
            .ok()
            .flatten()
            .map(|e| EntryRef { line: 0, ..e }.to_owned())
            .expect("an encoded line reads back")
    }

    /// The size of the encoded record (its fields and extras), in bytes.
    pub fn encoded_len(&self) -> usize {
        self.record.len()
    }

    /// The first text field of the record ([`RecordField::TEXT`]`[0]`: a person's
    /// employee id), read without decoding the rest; `None` when absent or unreadable.
    pub fn first_text(&self) -> Option<String> {
        first_text(&self.record)
    }

    /// The snapshot line this entry was read from (0: made, not read).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Decodes the full person.
    pub fn person(&self) -> Result<Person, SnapshotError> {
        self.record()
    }

    /// Decodes the full record.
    pub fn record<R: Record>(&self) -> Result<R, SnapshotError> {
        decode(&self.email, self.state.active, &self.record, self.line)
    }
}

/// The first element of an encoded record's array of text fields, when it is a string.
fn first_text(encoded: &[u8]) -> Option<String> {
    let rest = encoded.strip_prefix(b"[")?;
    if !rest.starts_with(b"\"") {
        return None;
    }
    serde_json::Deserializer::from_slice(rest)
        .into_iter::<String>()
        .next()?
        .ok()
}

/// The record of line `line` keyed `email`, from its encoded fields and extras.
fn decode<R: Record>(
    email: &str,
    active: bool,
    encoded: &[u8],
    line: u64,
) -> Result<R, SnapshotError> {
    let malformed = |why: String| SnapshotError::Malformed { line, why };
    let (texts, extras) = match encoded.iter().position(|&b| b == b'\t') {
        Some(tab) => (&encoded[..tab], Some(&encoded[tab + 1..])),
        None => (encoded, None),
    };
    let texts: Vec<Option<String>> =
        serde_json::from_slice(texts).map_err(|e| malformed(format!("fields: {e}")))?;
    if texts.len() > R::Field::TEXT.len() {
        return Err(malformed(format!(
            "{} fields, at most {} expected",
            texts.len(),
            R::Field::TEXT.len()
        )));
    }
    let mut record = R::with_key(email.to_owned());
    record.set_active(active);
    for (field, value) in R::Field::TEXT.iter().zip(texts) {
        record.put(*field, value);
    }
    if let Some(extras) = extras {
        *record.extra_mut() = serde_json::from_slice(extras)
            .map_err(|e| malformed(format!("extra attributes: {e}")))?;
    }
    Ok(record)
}

/// Reads a snapshot line by line, checking its order as it goes.
pub struct SnapshotReader<R> {
    input: BufReader<R>,
    buf: Vec<u8>,
    line: u64,
    last_email: String,
    offset: u64,
}

impl<R: Read> SnapshotReader<R> {
    /// Wraps a reader positioned at the start of a snapshot.
    pub fn new(input: R) -> Self {
        SnapshotReader {
            input: BufReader::with_capacity(1 << 16, input),
            buf: Vec::with_capacity(512),
            line: 0,
            last_email: String::new(),
            offset: 0,
        }
    }

    /// Bytes of the snapshot read so far: the offset just past the last entry returned
    /// (where the next line starts).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry, borrowed from the reader's buffer (no allocation), `None` at the
    /// end. Use [`EntryRef::to_owned`] to keep it.
    pub fn next_ref(&mut self) -> Result<Option<EntryRef<'_>>, SnapshotError> {
        self.buf.clear();
        let read = self.input.read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        self.offset += read as u64;
        self.line += 1;
        let line = self.line;
        let malformed = |why: &str| SnapshotError::Malformed {
            line,
            why: why.to_owned(),
        };
        let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let mut parts = text.splitn(4, |&b| b == b'\t');
        let (Some(hash), Some(flag), Some(email), Some(record)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected four tab-separated parts"));
        };
        let hash = std::str::from_utf8(hash)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| malformed("bad hash"))? as i64;
        let (active, protected) = match flag {
            b"a" => (true, false),
            b"i" => (false, false),
            b"r" => (false, true),
            _ => return Err(malformed("bad flag")),
        };
        let email = std::str::from_utf8(email).map_err(|_| malformed("email is not UTF-8"))?;
        if line > 1 && email <= self.last_email.as_str() {
            return Err(SnapshotError::Unsorted { line });
        }
        self.last_email.clear();
        self.last_email.push_str(email);
        Ok(Some(EntryRef {
            state: RowState { hash, active },
            email,
            protected,
            record,
            line,
        }))
    }

    /// The next entry, owned, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<SnapshotEntry>, SnapshotError> {
        Ok(self.next_ref()?.map(|e| e.to_owned()))
    }
}

/// One line of a snapshot, borrowed from the reader.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    /// The person's state (content hash and activity).
    pub state: RowState,
    /// The key.
    pub email: &'a str,
    /// Whether this only protects a person whose row was rejected.
    pub protected: bool,
    record: &'a [u8],
    line: u64,
}

impl EntryRef<'_> {
    /// The size of the encoded record (its fields and extras), in bytes: as
    /// [`SnapshotEntry::encoded_len`] of its owned copy.
    pub fn encoded_len(&self) -> usize {
        self.record.len()
    }

    /// The creation of this entry's person, for a directory that does not hold it
    /// (`None` for a protected row, which creates no one).
    pub fn creation(&self) -> Result<Option<Change>, SnapshotError> {
        if self.protected {
            return Ok(None);
        }
        Ok(Some(Change {
            kind: ChangeKind::Created,
            email: self.email.to_owned(),
            expected: None,
            target: self.state,
            person: Some(decode(
                self.email,
                self.state.active,
                self.record,
                self.line,
            )?),
            changed: vec![],
            renamed_from: None,
        }))
    }

    /// An owned copy.
    pub fn to_owned(&self) -> SnapshotEntry {
        SnapshotEntry {
            state: self.state,
            email: self.email.to_owned(),
            protected: self.protected,
            record: self.record.to_vec(),
            line: self.line,
        }
    }
}

impl<R: Read> Iterator for SnapshotReader<R> {
    type Item = Result<SnapshotEntry, SnapshotError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::person::Field;

    #[test]
    fn lines_round_trip_and_order_is_checked() {
        let mut a = Person::new("a@x.com".into());
        a.set(Field::JobTitle, "tab\there");
        a.set(Field::ManagerEmail, "boss@x.com");
        a.extra.insert("Cost\tCentre".into(), "42\n".into());
        let mut b = Person::new("b@x.com".into());
        b.active = false;
        let mut bytes = Vec::new();
        encode_line(&a, &mut bytes);
        encode_line(&b, &mut bytes);
        encode_protected("c@x.com", &mut bytes);
        assert_eq!(line_email(&bytes), b"a@x.com");
        let entries: Vec<_> = SnapshotReader::new(&bytes[..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(entries.len(), 3);
        assert!(!entries[0].protected && entries[2].protected);
        assert_eq!(entries[2].email, "c@x.com");
        assert_eq!(entries[0].person().unwrap(), a);
        assert_eq!(entries[0].first_text(), None);
        let mut c = Person::new("c@x.com".into());
        c.set(Field::EmployeeId, "E\"7");
        c.set(Field::JobTitle, "x");
        assert_eq!(SnapshotEntry::of(&c).first_text().as_deref(), Some("E\"7"));
        assert_eq!(entries[1].person().unwrap(), b);
        assert_eq!(entries[0].state, RowState::of(&a));
        assert!(!entries[1].state.active);

        let mut unsorted = Vec::new();
        encode_line(&b, &mut unsorted);
        encode_line(&a, &mut unsorted);
        let err = SnapshotReader::new(&unsorted[..]).nth(1).unwrap();
        assert!(matches!(err, Err(SnapshotError::Unsorted { line: 2 })));
    }
}
