//! Delimited text with a header row: comma, semicolon or tab, quoted fields, CRLF or LF.

use roster_shared::model::envelope::{Covered, RowError, Severity};
use roster_shared::model::person::Field;
use roster_shared::stage::Progress;

use crate::ad::is_type_line;
use crate::collect::Collector;
use crate::decode::Decoded;
use crate::error::RejectReason;
use crate::headers::{HeaderMap, Role, is_ad_export};
use crate::rows::{self, RowRules};
use crate::rules::normalize_email;
use crate::scan::{QuoteTrouble, Scanner, Watch};

/// Picks the delimiter of a header line (the one after PowerShell's `#TYPE` line, if
/// the file starts with one): whichever of `,` `;` `\t` occurs most outside
/// quotes (comma on a tie or when none occurs).
pub fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut lines = head.split(|&b| b == b'\n');
    let mut line = lines.next().unwrap_or(head);
    if is_type_line(line) {
        line = lines.next().unwrap_or(line);
    }
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (d, n) in &mut counts {
                if *d == b {
                    *n += 1;
                }
            }
        }
    }
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(d, n)| if n > best.1 { (d, n) } else { best },
        )
        .0
}

/// A CSV reader of `text` (UTF-8) with `delimiter`, every record as it comes (the
/// header too, records of any length), over the [`Scanner`] whose [`Watch`] gives each
/// record's physical line and the quote troubles (a value may run over at most
/// `max_record_lines` lines): how the parse, the reject file and `mapping check` all read
/// a delimited file, so they agree on lines.
pub fn records(
    text: Box<dyn std::io::Read + Send>,
    delimiter: u8,
    max_record_lines: u64,
) -> (csv::Reader<Scanner<Box<dyn std::io::Read + Send>>>, Watch) {
    let (scanner, watch) = Scanner::new(text, delimiter, max_record_lines);
    let reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(scanner);
    (reader, watch)
}

/// The value `bytes` as text. Decoded input is UTF-8 by construction; plain input is
/// checked here, so an error can name its line and column.
fn text<'a>(
    bytes: &'a [u8],
    line: u64,
    column: usize,
    header: &str,
) -> Result<&'a str, RejectReason> {
    std::str::from_utf8(bytes).map_err(|e| RejectReason::InvalidUtf8 {
        line,
        column,
        header: header.to_owned(),
        byte: bytes[e.valid_up_to()],
        at: e.valid_up_to() + 1,
    })
}

/// Reads every row into `out` by `rules`; returns the email column's header and what
/// the columns feed ([`crate::headers::covered`]). `Err`
/// rejects the whole file, with the reason. Line numbers are the physical lines a text
/// editor shows (see [`crate::scan`]), and a quote left open, or a file cut mid-record,
/// refuses the file instead of swallowing or dropping the rows after it. A `#TYPE` line
/// above the header (PowerShell's `Export-Csv`) is passed over, and a header that is an
/// Active Directory export's is read by its rules ([`HeaderMap::roles`]).
pub fn read(
    decoded: Decoded,
    delimiter: u8,
    headers: &HeaderMap,
    rules: &RowRules,
    out: &mut Collector,
    progress: &dyn Progress,
) -> Result<(Option<String>, Covered), RejectReason> {
    // The rows go to the collector on a thread of its own: encoding each row into the
    // snapshot takes about as long as reading and checking it, and two cores are
    // there. Rows travel in order, in batches, and are moved, not copied.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(HAND_OVER_BATCHES);
        let collector = scope.spawn(move || -> Result<(), RejectReason> {
            for batch in rx {
                for item in batch {
                    match item {
                        Item::Row(outcome, line) => out.push(outcome, line),
                        Item::Reject(error) => out.reject(error),
                    }
                    if let Some(refusal) = out.over_limit() {
                        return Err(refusal);
                    }
                }
            }
            Ok(())
        });
        let mut sink = Sink {
            tx: Some(tx),
            batch: Vec::with_capacity(HAND_OVER_ROWS),
        };
        let read = read_rows(decoded, delimiter, headers, rules, &mut sink, progress);
        sink.close();
        let collected = collector
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The collector's refusal (too many rows) first: reading stopped because of it.
        collected?;
        read
    })
}

/// Rows handed to the collector's thread at once.
const HAND_OVER_ROWS: usize = 1024;

/// Batches of rows on their way to the collector's thread, at most.
const HAND_OVER_BATCHES: usize = 4;

/// What the reader hands the collector. (Nearly every item is a row: boxing it would
/// allocate once a row to save moving a few hundred bytes.)
#[allow(clippy::large_enum_variant)]
enum Item {
    /// A row's outcome and the line it starts on.
    Row(rows::RowOutcome, u64),
    /// A row refused with no email to protect.
    Reject(RowError),
}

/// The reader's end of the hand-over to the collector's thread.
struct Sink {
    tx: Option<std::sync::mpsc::SyncSender<Vec<Item>>>,
    batch: Vec<Item>,
}

impl Sink {
    /// Hands over `item`; false once the collector stopped (it refused the file).
    fn put(&mut self, item: Item) -> bool {
        self.batch.push(item);
        if self.batch.len() < HAND_OVER_ROWS {
            return true;
        }
        self.flush()
    }

    fn flush(&mut self) -> bool {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HAND_OVER_ROWS));
        match &self.tx {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        }
    }

    /// Hands over what is left and ends the hand-over.
    fn close(&mut self) {
        if !self.batch.is_empty() {
            self.flush();
        }
        self.tx = None;
    }
}

/// [`read`]'s reading: every row into `sink`.
fn read_rows(
    decoded: Decoded,
    delimiter: u8,
    headers: &HeaderMap,
    rules: &RowRules,
    sink: &mut Sink,
    progress: &dyn Progress,
) -> Result<(Option<String>, Covered), RejectReason> {
    let (mut reader, watch) = records(decoded.reader, delimiter, rules.limits.max_record_lines);
    let mut record = csv::ByteRecord::new();
    let line_of =
        |position: Option<&csv::Position>| watch.line_at(position.map_or(0, csv::Position::byte));
    let csv_error = |error: csv::Error| RejectReason::Csv {
        line: error.position().map(|p| watch.line_at(p.byte())),
        error,
    };
    let quote_trouble = trouble_reason;
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(RejectReason::Empty);
    }
    if record.get(0).is_some_and(is_type_line)
        && !reader.read_byte_record(&mut record).map_err(csv_error)?
    {
        return Err(RejectReason::Empty);
    }
    let header_line = line_of(record.position());
    let names: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| text(h, header_line, i + 1, "header").map(str::to_owned))
        .collect::<Result<_, _>>()?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let roles = headers.roles(&name_refs)?;
    let covered = crate::headers::covered(&roles);
    let rules = RowRules {
        ad: is_ad_export(&name_refs),
        ..rules.clone()
    };
    let maps = rules.maps(&names, &roles);
    let email_index = roles
        .iter()
        .position(|r| *r == Role::Field(Field::Email))
        .expect("roles() requires an email column");
    let mut since_report = 0u64;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        if let Some(trouble) = watch.trouble() {
            return Err(quote_trouble(trouble));
        }
        let line = line_of(record.position());
        let mut values = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let header = names.get(i).map_or("", String::as_str);
            let value = text(field, line, i + 1, header)?;
            values.push(rows::rewrite_with(
                maps.get(i).and_then(Option::as_ref),
                value,
            ));
        }
        if values.len() != roles.len() {
            if values.iter().all(|v| v.trim().is_empty()) {
                continue;
            }
            if let Some(refusal) = misshapen_refusal(
                &watch,
                reader.position().byte(),
                line,
                values.len(),
                roles.len(),
            ) {
                return Err(refusal);
            }
            let error = RowError {
                line: Some(line),
                column: None,
                message: format!(
                    "expected {} fields (as in the header), found {}",
                    roles.len(),
                    values.len()
                ),
                severity: Severity::Error,
            };
            let item = match values.get(email_index).map(|e| normalize_email(e)) {
                Some(Ok(email)) => Item::Row(
                    rows::RowOutcome::Rejected {
                        email: Some(email),
                        errors: vec![error],
                    },
                    line,
                ),
                _ => Item::Reject(error),
            };
            if !sink.put(item) {
                // The collector refused the file; it says why.
                return Ok((None, covered));
            }
        } else {
            let cells = roles
                .iter()
                .zip(names.iter())
                .zip(values.iter())
                .map(|((r, n), v)| (r, n.as_str(), *v));
            if !sink.put(Item::Row(rows::build(cells, Some(line), &rules), line)) {
                return Ok((None, covered));
            }
        }
        since_report += 1;
        if since_report == 10_000 {
            progress.rows_read(since_report);
            since_report = 0;
        }
    }
    if let Some(trouble) = watch.trouble_at_end() {
        return Err(quote_trouble(trouble));
    }
    progress.rows_read(since_report);
    Ok((Some(names[email_index].clone()), covered))
}

/// One data row of a delimited file as [`table`] reads it.
#[derive(Debug)]
pub enum TableRow<'a> {
    /// A row with as many values as the header has names.
    Values {
        /// The physical line it starts on.
        line: u64,
        /// Its values, in header order.
        values: &'a [&'a str],
    },
    /// A row that fails alone: another length than the header's, or a value that
    /// cannot be stored (a control character, over `ROSTER_MAX_CELL_BYTES`).
    Failed(RowError),
}

/// Reads a small delimited file of some other record kind than people (contact
/// details, a bundle's groups and mappings) with the same care as the people reader:
/// lines as an editor shows them, invalid UTF-8 named by line and column, a quote left
/// open or a file cut mid-record refusing the file, a row of the wrong length or with a
/// value that cannot be stored failing alone, all within `limits`. Hands `header` the
/// header's names (what it makes of them, or the file's
/// refusal), then `row` what `header` made and every non-blank data row.
pub fn table<H>(
    decoded: Decoded,
    delimiter: u8,
    limits: &crate::ParseLimits,
    header: impl FnOnce(&[String]) -> Result<H, RejectReason>,
    mut row: impl FnMut(&H, TableRow<'_>),
) -> Result<(), RejectReason> {
    let (mut reader, watch) = records(decoded.reader, delimiter, limits.max_record_lines);
    let mut record = csv::ByteRecord::new();
    let line_of =
        |position: Option<&csv::Position>| watch.line_at(position.map_or(0, csv::Position::byte));
    let csv_error = |error: csv::Error| RejectReason::Csv {
        line: error.position().map(|p| watch.line_at(p.byte())),
        error,
    };
    if !reader.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(RejectReason::Empty);
    }
    let header_line = line_of(record.position());
    let names: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| text(h, header_line, i + 1, "header").map(str::to_owned))
        .collect::<Result<_, _>>()?;
    let made = header(&names)?;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        if let Some(trouble) = watch.trouble() {
            return Err(trouble_reason(trouble));
        }
        let line = line_of(record.position());
        let values: Vec<&str> = record
            .iter()
            .enumerate()
            .map(|(i, field)| text(field, line, i + 1, names.get(i).map_or("", String::as_str)))
            .collect::<Result<_, _>>()?;
        if values.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        if values.len() == names.len() {
            let unstorable = values.iter().enumerate().find_map(|(i, v)| {
                rows::unstorable(v, limits).map(|why| (names[i].trim().to_owned(), why))
            });
            if let Some((column, why)) = unstorable {
                row(
                    &made,
                    TableRow::Failed(RowError::new(Some(line), Some(column), why)),
                );
                continue;
            }
            row(
                &made,
                TableRow::Values {
                    line,
                    values: &values,
                },
            );
            continue;
        }
        if let Some(refusal) = misshapen_refusal(
            &watch,
            reader.position().byte(),
            line,
            values.len(),
            names.len(),
        ) {
            return Err(refusal);
        }
        row(
            &made,
            TableRow::Failed(RowError::new(
                Some(line),
                None,
                format!(
                    "expected {} fields (as in the header), found {}",
                    names.len(),
                    values.len()
                ),
            )),
        );
    }
    if let Some(trouble) = watch.trouble_at_end() {
        return Err(trouble_reason(trouble));
    }
    Ok(())
}

/// For a record starting on `line` with `found` fields where the header has
/// `expected`, read up to byte `next` of the text: the refusal of the whole file when the
/// wrong length comes from broken quoting (the record ran over lines) or from the file
/// being cut mid-record; `None` when the row merely fails alone.
fn misshapen_refusal(
    watch: &Watch,
    next: u64,
    line: u64,
    found: usize,
    expected: usize,
) -> Option<RejectReason> {
    let next_line = watch.line_at(next);
    if next_line > line + 1 {
        // At the end of the file still inside quotes: say that, it is plainer.
        if watch.is_end(next)
            && let Some(trouble) = watch.trouble_at_end()
        {
            return Some(trouble_reason(trouble));
        }
        // A record running over lines with the wrong shape: a quote opened and closed
        // somewhere it should not, swallowing the lines between.
        return Some(RejectReason::QuoteMismatch {
            line,
            last_line: next_line - 1,
            found,
            expected,
        });
    }
    (found < expected && watch.is_end(next) && !watch.ended_with_break()).then_some(
        RejectReason::Cut {
            line,
            found,
            expected,
        },
    )
}

/// The refusal a quote trouble makes.
fn trouble_reason(trouble: QuoteTrouble) -> RejectReason {
    match trouble {
        QuoteTrouble::TooManyLines {
            record_line,
            quote_line,
            limit,
        } => RejectReason::QuotedTooLong {
            line: record_line,
            quote_line,
            limit,
        },
        QuoteTrouble::EndsInsideQuotes {
            record_line,
            quote_line,
        } => RejectReason::UnclosedQuote {
            line: record_line,
            quote_line,
        },
        QuoteTrouble::TextAfterQuote {
            record_line,
            quote_line,
            close_line,
        } => RejectReason::TextAfterQuote {
            line: record_line,
            quote_line,
            close_line,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter(b"\"a;b\",c"), b',');
        assert_eq!(sniff_delimiter(b"email"), b',');
        assert_eq!(
            sniff_delimiter(b"#TYPE Selected.Microsoft.ActiveDirectory;x\nMail;Name;Title\n"),
            b';',
            "the header under a #TYPE line decides"
        );
    }
}
