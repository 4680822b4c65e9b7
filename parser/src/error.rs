//! Why a whole file is refused, as data: the file, the reason, and where the reason
//! points (line, column, field), so callers and tests read the place rather than parse
//! a message. Row errors, which reject one row alone, are
//! [`roster_shared::model::envelope::RowError`]s.

use std::fmt;

/// A whole-file refusal: which file and why. Its message starts with the file name, then
/// the place when there is one (`people.csv: line 2, column 2 ("Name"): not valid UTF-8
/// ...`).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct Rejection {
    /// The file's name as delivered.
    pub file: String,
    /// Why it is refused.
    #[source]
    pub reason: RejectReason,
}

impl Rejection {
    /// The line the reason points at (1 is the first line), if it points at one: for a
    /// record, the line where it began.
    pub fn line(&self) -> Option<u64> {
        match &self.reason {
            RejectReason::InvalidUtf8 { line, .. }
            | RejectReason::UnclosedQuote { line, .. }
            | RejectReason::QuotedTooLong { line, .. }
            | RejectReason::QuoteMismatch { line, .. }
            | RejectReason::TextAfterQuote { line, .. }
            | RejectReason::Cut { line, .. } => Some(*line),
            RejectReason::Csv { line, .. } => *line,
            RejectReason::Json { error } => Some(error.line() as u64),
            _ => None,
        }
    }

    /// The column the reason points at (1 is the first), if it points at one.
    pub fn column(&self) -> Option<usize> {
        match &self.reason {
            RejectReason::InvalidUtf8 { column, .. } => Some(*column),
            RejectReason::SameTarget { second, .. } => Some(second.index),
            RejectReason::Json { error } => Some(error.column()),
            _ => None,
        }
    }

    /// The field (header) the reason points at, if it points at one.
    pub fn field(&self) -> Option<&str> {
        match &self.reason {
            RejectReason::InvalidUtf8 { header, .. } => Some(header),
            RejectReason::SameTarget { second, .. } => Some(&second.header),
            _ => None,
        }
    }
}

/// One column of a header row, for messages: its position (from 1) and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Position, from 1.
    pub index: usize,
    /// The header as written (trimmed).
    pub header: String,
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.index, self.header)
    }
}

/// Why a file cannot be read as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// Reading the bytes failed.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    /// Sorting the rows of a large file on local disk failed (a full scratch folder,
    /// say): not the file's fault, so worth trying again.
    #[error("cannot sort the rows in the scratch folder: {0}")]
    Scratch(#[source] std::io::Error),
    /// UTF-32 (a byte-order mark says so).
    #[error("the file is UTF-32, which is not supported; save it as UTF-8")]
    Utf32,
    /// The encoding named for the file is not one Roster knows.
    #[error("unknown encoding {0:?}")]
    UnknownEncoding(String),
    /// A spreadsheet, archive or document rather than text.
    #[error("the file is not text: it is {0}")]
    Binary(&'static str),
    /// A NUL byte early in the file: binary data.
    #[error(
        "the file is not text: NUL byte at offset {offset} (binary data, or UTF-16 without a \
         byte-order mark)"
    )]
    Nul {
        /// Byte offset of the NUL.
        offset: usize,
    },
    /// A value that is not UTF-8 in a file read as UTF-8.
    #[error(
        "line {line}, column {column} ({header:?}): not valid UTF-8 (bad byte 0x{byte:02X} at \
         position {at}); the file must be UTF-8 (with or without BOM) or UTF-16 with BOM, or \
         name its encoding (for example --encoding windows-1252)"
    )]
    InvalidUtf8 {
        /// The line the value is on.
        line: u64,
        /// Its column, from 1.
        column: usize,
        /// The column's header (`header` for the header row itself).
        header: String,
        /// The first bad byte.
        byte: u8,
        /// Its position in the value, from 1.
        at: usize,
    },
    /// No header row at all.
    #[error("the file is empty: expected a header row")]
    Empty,
    /// No column is the email.
    #[error(
        "no email column: expected one of {expected} (or a column mapped to email with \
         `roster mapping set`); found: {}",
        found.join(", ")
    )]
    NoEmailColumn {
        /// The accepted spellings, for the message.
        expected: &'static str,
        /// The headers found.
        found: Vec<String>,
    },
    /// Two columns feed the same field.
    #[error(
        "columns {first} and {second} both map to {target}; remove one, or map one elsewhere \
         with `roster mapping set`"
    )]
    SameTarget {
        /// The first column.
        first: Column,
        /// The second column.
        second: Column,
        /// What both map to.
        target: String,
    },
    /// The delimited-text reader failed.
    #[error("{}{error}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Csv {
        /// The line, when known.
        line: Option<u64>,
        /// The reader's error.
        #[source]
        error: csv::Error,
    },
    /// Not JSON, or not the expected shape.
    #[error("invalid JSON: {error}")]
    Json {
        /// The JSON reader's error (it says the line and column).
        #[source]
        error: serde_json::Error,
    },
    /// The file ends inside a quoted value: a quote left open swallowed the rows after it.
    #[error(
        "line {line}: the file ends inside a quoted value opened on line {quote_line}; a \
         quote is probably not closed there (or the file is cut off)"
    )]
    UnclosedQuote {
        /// The line where the record began.
        line: u64,
        /// The line where the quote opened.
        quote_line: u64,
    },
    /// A quoted value runs over more lines than the install allows.
    #[error(
        "line {line}: a quoted value opened on line {quote_line} runs over more than {limit} \
         lines; a quote is probably not closed there (the limit is ROSTER_MAX_RECORD_LINES)"
    )]
    QuotedTooLong {
        /// The line where the record began.
        line: u64,
        /// The line where the quote opened.
        quote_line: u64,
        /// The limit.
        limit: u64,
    },
    /// A quoted value ran over lines and closed with text right after its quote.
    #[error(
        "line {line}: a quoted value opened on line {quote_line} closes on line {close_line} \
         with more text after its quote; a quote is probably not closed on line {quote_line}"
    )]
    TextAfterQuote {
        /// The line where the record began.
        line: u64,
        /// The line where the quote opened.
        quote_line: u64,
        /// The line where it closed.
        close_line: u64,
    },
    /// A record spanning lines has the wrong number of fields: a quote closed too late.
    #[error(
        "lines {line} to {last_line}: a record running over several lines has {found} fields \
         where the header has {expected}; a quote is probably not closed on line {line}"
    )]
    QuoteMismatch {
        /// The line where the record began.
        line: u64,
        /// Its last line.
        last_line: u64,
        /// Fields found.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// The last record stops short with no line end: the file was cut.
    #[error(
        "line {line}: the file ends in the middle of a record ({found} of {expected} fields); \
         it looks cut off"
    )]
    Cut {
        /// The line where the record began.
        line: u64,
        /// Fields found.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// More rows than the install allows.
    #[error("more than {limit} rows (the install's limit, ROSTER_MAX_ROWS)")]
    TooManyRows {
        /// The limit.
        limit: u64,
    },
    /// JSON without a list of people.
    #[error(
        "no list of people: expected {{\"employees\": [...]}} or a list (also accepted for the \
         list's key: {keys})"
    )]
    NoList {
        /// The keys accepted for the list.
        keys: String,
    },
    /// An XML file that is not a SOAP answer Roster can read (not an envelope, a fault,
    /// a `DOCTYPE`, broken XML).
    #[error("not a SOAP answer Roster can read: {0}")]
    Soap(String),
    /// A file of another record kind without the column its records are keyed by.
    #[error("no {column} column: expected one of {expected}; found: {}", found.join(", "))]
    MissingColumn {
        /// What the column is (`Person`, `group id`, ...).
        column: &'static str,
        /// The accepted spellings, for the message.
        expected: &'static str,
        /// The headers found.
        found: Vec<String>,
    },
    /// A bundle that cannot be read as one: not a zip, a file missing, a file in the
    /// wrong encoding, a subgroup cycle. The message names the file.
    #[error("{0}")]
    Bundle(String),
    /// A file inside a bundle refused as a whole: the inner file and its reason.
    #[error("{file}: {reason}")]
    InBundle {
        /// The file's name inside the bundle.
        file: String,
        /// Why it is refused.
        reason: Box<RejectReason>,
    },
}
