//! Gathers mapped rows into a compact arena, then sorts them by email, turns repeated
//! emails into row errors (the first row wins) and writes the snapshot. Memory holds the
//! encoded snapshot once plus 32 bytes a row; nothing else grows with the file.

use std::io::{self, Write};

use roster_shared::model::envelope::RowError;
use roster_shared::model::snapshot::{encode_line, encode_protected, line_email};

use crate::ParseLimits;
use crate::error::RejectReason;
use crate::rows::RowOutcome;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The email's first 16 bytes, big-endian and zero-padded: most comparisons end here,
    /// without touching the arena.
    prefix: u128,
    start: usize,
    len: u32,
    email_len: u32,
    ordinal: u32,
    line: u64,
    protected: bool,
}

/// Offset of the email in an encoded snapshot line (after the hash and the flag).
const EMAIL_AT: usize = 19;

fn prefix_of(email: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = email.len().min(16);
    bytes[..n].copy_from_slice(&email[..n]);
    u128::from_be_bytes(bytes)
}

/// Collects rows as they are read.
#[derive(Debug, Default)]
pub struct Collector {
    limits: ParseLimits,
    arena: Vec<u8>,
    entries: Vec<Entry>,
    errors: Vec<RowError>,
    rows_read: u64,
    rejected: u64,
}

impl Collector {
    /// An empty collector for a file read within `limits`.
    pub fn new(limits: ParseLimits) -> Self {
        Collector {
            limits,
            ..Collector::default()
        }
    }

    /// The limits the file is read within.
    pub fn limits(&self) -> &ParseLimits {
        &self.limits
    }

    /// The refusal of the whole file once it has more rows than the limit allows.
    pub fn over_limit(&self) -> Option<RejectReason> {
        (self.rows_read > self.limits.max_rows).then_some(RejectReason::TooManyRows {
            limit: self.limits.max_rows,
        })
    }

    /// Adds the outcome of one row that starts at `line` (0 when unknown).
    pub fn push(&mut self, outcome: RowOutcome, line: u64) {
        let start = self.arena.len();
        let (protected, email_len) = match outcome {
            RowOutcome::Blank => return,
            RowOutcome::Person(p) => {
                encode_line(&p, &mut self.arena);
                (false, p.email.len())
            }
            RowOutcome::Rejected { email, errors } => {
                self.rejected += 1;
                self.errors.extend(errors);
                match email {
                    Some(email) => {
                        encode_protected(&email, &mut self.arena);
                        (true, email.len())
                    }
                    None => {
                        self.rows_read += 1;
                        return;
                    }
                }
            }
        };
        let email = &self.arena[start + EMAIL_AT..start + EMAIL_AT + email_len];
        debug_assert_eq!(email, line_email(&self.arena[start..]));
        self.entries.push(Entry {
            prefix: prefix_of(email),
            start,
            len: (self.arena.len() - start) as u32,
            email_len: email_len as u32,
            ordinal: self.rows_read as u32,
            line,
            protected,
        });
        self.rows_read += 1;
    }

    /// Adds an error that rejects one row on its own terms (a record that is not an
    /// object, a row with the wrong number of fields and no readable email).
    pub fn reject(&mut self, error: RowError) {
        self.rows_read += 1;
        self.rejected += 1;
        self.errors.push(error);
    }

    /// Rows seen so far (blank ones not counted).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Sorts and de-duplicates. `email_column` labels duplicate-email errors.
    pub fn finish(mut self, email_column: impl Fn(u32) -> Option<String>) -> ParsedFile {
        let arena = std::mem::take(&mut self.arena);
        let email =
            |e: &Entry| &arena[e.start + EMAIL_AT..e.start + EMAIL_AT + e.email_len as usize];
        self.entries.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| email(a).cmp(email(b)))
                .then(a.protected.cmp(&b.protected))
                .then(a.ordinal.cmp(&b.ordinal))
        });
        let mut kept: Vec<Entry> = Vec::with_capacity(self.entries.len());
        let mut protected = 0u64;
        for entry in &self.entries {
            match kept.last() {
                Some(prev) if email(prev) == email(entry) => {
                    if !entry.protected && !prev.protected {
                        self.rejected += 1;
                        let where_first = if prev.line > 0 {
                            format!("line {}", prev.line)
                        } else {
                            format!("record {}", prev.ordinal + 1)
                        };
                        self.errors.push(RowError {
                            line: (entry.line > 0).then_some(entry.line),
                            column: email_column(entry.ordinal),
                            message: format!(
                                "duplicate email {}: already on {where_first}; the first row \
                                 was kept",
                                String::from_utf8_lossy(email(entry))
                            ),
                        });
                    }
                }
                _ => {
                    protected += u64::from(entry.protected);
                    kept.push(*entry);
                }
            }
        }
        self.errors.sort_by_key(|e| e.line);
        let accepted = kept.len() as u64 - protected;
        ParsedFile {
            arena,
            entries: kept,
            errors: self.errors,
            rows_read: self.rows_read,
            rejected: self.rejected,
            accepted,
        }
    }
}

/// A parsed file: the sorted snapshot, ready to write, and the rejected rows.
#[derive(Debug)]
pub struct ParsedFile {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Every row error, in file order.
    pub errors: Vec<RowError>,
    /// Data rows read (blank rows not counted).
    pub rows_read: u64,
    /// Rows rejected alone.
    pub rejected: u64,
    /// People in the snapshot.
    pub accepted: u64,
}

impl ParsedFile {
    /// Writes the snapshot (sorted by email, see `roster_shared::model::snapshot`).
    pub fn write_snapshot(&self, mut out: impl Write) -> io::Result<()> {
        for e in &self.entries {
            out.write_all(&self.arena[e.start..e.start + e.len as usize])?;
        }
        out.flush()
    }

    /// Writes the row errors as JSON lines.
    pub fn write_rejects(&self, mut out: impl Write) -> io::Result<()> {
        for e in &self.errors {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}
