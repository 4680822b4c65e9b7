//! Reject files: a delimited file's rejected rows as the customer wrote them, so they can
//! fix those rows and send just them again.
//!
//! The file has the input's header with `line` and `error` appended (which the parser
//! drops when the file comes back: [`is_reject_file`]), then each rejected
//! row with its cells untouched, the line it starts on and what is wrong (several errors
//! joined by `; `). It uses the input's delimiter and encoding, byte-order mark included,
//! so it opens in the same tool the file came from. Rows are found by reading the file a
//! second time with the same line counting as the parse ([`crate::scan`]), so duplicates
//! found only once the whole file was read are there too.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use encoding_rs::Encoding;
use roster_shared::model::envelope::{RowError, Severity};

use crate::ad::is_type_line;
use crate::csv_input::records;
use crate::decode;
use crate::error::RejectReason;

/// Whether a header row is a reject file's: its last two columns are `line` and
/// `error`, which are then not read (the fixed rows of a reject file can be sent back
/// as they are).
pub fn is_reject_file(headers: &[&str]) -> bool {
    matches!(headers, [.., line, error]
        if line.trim().eq_ignore_ascii_case("line") && error.trim().eq_ignore_ascii_case("error"))
}

/// How a delimited file was read, to write its reject file the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The field delimiter.
    pub delimiter: u8,
    /// The encoding's name (as [`encoding_rs::Encoding::name`] gives it).
    pub encoding: &'static str,
    /// Whether the file started with a byte-order mark.
    pub bom: bool,
    /// Whether its header line ends in CR LF (Windows), as the reject file's lines then do.
    pub crlf: bool,
}

impl Layout {
    /// The layout of the delimited file `decoded` (its head read), split by `delimiter`.
    pub fn of(decoded: &crate::decode::Decoded, delimiter: u8) -> Layout {
        let first_line = decoded.head.split(|&b| b == b'\n').next();
        Layout {
            delimiter,
            encoding: decoded.encoding,
            bom: decoded.bom,
            crlf: first_line.is_some_and(|l| l.ends_with(b"\r")),
        }
    }
}

/// Bytes of reject file encoded at once.
const CHUNK: usize = 1 << 16;

/// Writes the reject file of `input` (the raw file, read as `label` says when it has no
/// byte-order mark) to `out`: every row `errors` rejects (the errors with a line). Returns
/// the rows written. A file with no such row gives an empty reject file.
pub fn write(
    input: Box<dyn Read + Send>,
    label: Option<&str>,
    layout: Layout,
    errors: &[RowError],
    max_record_lines: u64,
    out: impl Write,
) -> Result<u64, RejectReason> {
    let mut by_line: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for e in errors {
        if let (Some(line), Severity::Error) = (e.line, e.severity) {
            by_line.entry(line).or_default().push(&e.message);
        }
    }
    let mut out = Encoder::new(out, layout);
    if by_line.is_empty() {
        out.finish()?;
        return Ok(0);
    }
    let decoded = decode::decode(input, label)?;
    let (mut reader, watch) = records(decoded.reader, layout.delimiter, max_record_lines);
    let new_writer = |buf: Vec<u8>| {
        csv::WriterBuilder::new()
            .delimiter(layout.delimiter)
            .flexible(true)
            .terminator(if layout.crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .from_writer(buf)
    };
    let mut writer = new_writer(Vec::with_capacity(CHUNK));
    let csv_error = |error: csv::Error| RejectReason::Csv { line: None, error };
    let mut record = csv::ByteRecord::new();
    let mut header = true;
    let mut written = 0u64;
    while reader.read_byte_record(&mut record).map_err(csv_error)? {
        if header {
            if record.get(0).is_some_and(is_type_line) {
                continue;
            }
            header = false;
            let mut row = record.clone();
            row.push_field(b"line");
            row.push_field(b"error");
            writer.write_byte_record(&row).map_err(csv_error)?;
            continue;
        }
        let line = watch.line_at(record.position().map_or(0, csv::Position::byte));
        let Some(messages) = by_line.remove(&line) else {
            continue;
        };
        let mut row = record.clone();
        row.push_field(line.to_string().as_bytes());
        row.push_field(messages.join("; ").as_bytes());
        writer.write_byte_record(&row).map_err(csv_error)?;
        written += 1;
        if writer.get_ref().len() >= CHUNK {
            let mut buf = writer
                .into_inner()
                .map_err(|e| RejectReason::Io(e.into_error()))?;
            out.write(&buf)?;
            buf.clear();
            writer = new_writer(buf);
        }
        if by_line.is_empty() {
            break;
        }
    }
    let buf = writer
        .into_inner()
        .map_err(|e| RejectReason::Io(e.into_error()))?;
    out.write(&buf)?;
    out.finish()?;
    Ok(written)
}

/// Writes UTF-8 text in the reject file's encoding.
struct Encoder<W> {
    out: W,
    encoding: &'static Encoding,
    started: bool,
    bom: bool,
}

impl<W: Write> Encoder<W> {
    fn new(out: W, layout: Layout) -> Self {
        Encoder {
            out,
            encoding: Encoding::for_label(layout.encoding.as_bytes()).unwrap_or(encoding_rs::UTF_8),
            started: false,
            bom: layout.bom,
        }
    }

    /// Writes `utf8` (whole CSV records, so whole characters).
    fn write(&mut self, utf8: &[u8]) -> Result<(), RejectReason> {
        let io = RejectReason::Io;
        if !self.started {
            self.started = true;
            if self.bom {
                let mark: &[u8] = match self.encoding.name() {
                    "UTF-16LE" => &[0xFF, 0xFE],
                    "UTF-16BE" => &[0xFE, 0xFF],
                    _ => &[0xEF, 0xBB, 0xBF],
                };
                self.out.write_all(mark).map_err(io)?;
            }
        }
        let text = String::from_utf8_lossy(utf8);
        match self.encoding.name() {
            // encoding_rs encodes UTF-16 as UTF-8 (the WHATWG rule); done here instead.
            "UTF-16LE" => {
                let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
                self.out.write_all(&bytes).map_err(io)
            }
            "UTF-16BE" => {
                let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
                self.out.write_all(&bytes).map_err(io)
            }
            _ => {
                let (bytes, _, _) = self.encoding.encode(&text);
                self.out.write_all(&bytes).map_err(io)
            }
        }
    }

    fn finish(mut self) -> Result<(), RejectReason> {
        self.out.flush().map_err(RejectReason::Io)
    }
}
