//! Bytes to UTF-8 text: byte-order marks, declared encodings, and the early refusal of
//! files that are not text at all.

use std::io::{Cursor, Read};

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};
use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::error::RejectReason;

/// A UTF-8 byte stream ready for the format readers.
pub struct Decoded {
    /// UTF-8 text (not yet validated when `validate` is set).
    pub reader: Box<dyn Read + Send>,
    /// Whether the text still has to be checked for valid UTF-8 (plain input); decoded
    /// input is valid by construction.
    pub validate: bool,
    /// The encoding the file was read as, for messages.
    pub encoding: &'static str,
    /// The first bytes of the text, for sniffing the format.
    pub head: Vec<u8>,
}

const PEEK: usize = 8192;

/// Sniffs the encoding of `input` and wraps it so it yields UTF-8.
///
/// A UTF-8 or UTF-16 byte-order mark decides; otherwise `label` (an encoding name such as
/// `windows-1252`) if given, else UTF-8. Refuses, with a message saying why, input that
/// is binary (NUL bytes, or the signature of a spreadsheet, archive or PDF), UTF-32, or
/// an unknown `label`.
pub fn decode(
    mut input: Box<dyn Read + Send>,
    label: Option<&str>,
) -> Result<Decoded, RejectReason> {
    let mut head = Vec::with_capacity(PEEK);
    (&mut input)
        .take(PEEK as u64)
        .read_to_end(&mut head)
        .map_err(RejectReason::Io)?;
    let bom: Option<(&'static Encoding, usize)> = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Some((encoding_rs::UTF_8, 3))
    } else if head.starts_with(&[0xFF, 0xFE, 0, 0]) || head.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Err(RejectReason::Utf32);
    } else if head.starts_with(&[0xFF, 0xFE]) {
        Some((UTF_16LE, 2))
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some((UTF_16BE, 2))
    } else {
        None
    };
    let declared = match label {
        Some(l) => Some(
            Encoding::for_label(l.trim().as_bytes())
                .ok_or_else(|| RejectReason::UnknownEncoding(l.to_owned()))?,
        ),
        None => None,
    };
    let encoding = bom
        .map(|(e, _)| e)
        .or(declared)
        .unwrap_or(encoding_rs::UTF_8);
    if encoding == encoding_rs::UTF_8 || bom.is_none() {
        let text = &head[bom.map_or(0, |(_, n)| n)..];
        if let Some(why) = not_text(text) {
            return Err(why);
        }
    }
    if encoding == encoding_rs::UTF_8 {
        // Plain UTF-8 streams through untouched and is validated field by field, so an
        // error can name its line and column.
        let text_head = head[bom.map_or(0, |(_, n)| n)..].to_vec();
        return Ok(Decoded {
            reader: Box::new(Cursor::new(text_head.clone()).chain(input)),
            validate: true,
            encoding: "UTF-8",
            head: text_head,
        });
    }
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(input));
    let mut reader: Box<dyn Read + Send> = Box::new(
        DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .bom_sniffing(true)
            .build(whole),
    );
    let mut text_head = Vec::with_capacity(PEEK);
    (&mut reader)
        .take(PEEK as u64)
        .read_to_end(&mut text_head)
        .map_err(RejectReason::Io)?;
    Ok(Decoded {
        reader: Box::new(Cursor::new(text_head.clone()).chain(reader)),
        validate: false,
        encoding: encoding.name(),
        head: text_head,
    })
}

/// Why these first bytes cannot be delimited text or JSON, if they cannot.
fn not_text(head: &[u8]) -> Option<RejectReason> {
    let kind = if head.starts_with(b"PK\x03\x04") {
        Some("a ZIP archive (an .xlsx workbook?); export the sheet as CSV")
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        Some("an Office document (an .xls workbook?); export the sheet as CSV")
    } else if head.starts_with(b"%PDF") {
        Some("a PDF document")
    } else if head.starts_with(&[0x1F, 0x8B]) {
        Some("gzip-compressed; decompress it first")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Some(RejectReason::Binary(kind));
    }
    head.iter()
        .position(|&b| b == 0)
        .map(|offset| RejectReason::Nul { offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], label: Option<&str>) -> Result<(String, bool, &'static str), String> {
        let d = decode(Box::new(Cursor::new(bytes.to_vec())), label).map_err(|e| e.to_string())?;
        let validate = d.validate;
        let enc = d.encoding;
        let mut out = Vec::new();
        let mut r = d.reader;
        r.read_to_end(&mut out).unwrap();
        Ok((String::from_utf8(out).unwrap(), validate, enc))
    }

    #[test]
    fn boms_and_labels() {
        assert_eq!(
            read(b"\xEF\xBB\xBFa,b", None).unwrap(),
            ("a,b".into(), true, "UTF-8")
        );
        assert_eq!(read(b"a,b", None).unwrap().0, "a,b");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("é,b".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(
            read(&utf16, None).unwrap(),
            ("é,b".into(), false, "UTF-16LE")
        );
        assert_eq!(read(b"caf\xE9", Some("windows-1252")).unwrap().0, "café");
        assert!(
            read(b"x", Some("klingon"))
                .unwrap_err()
                .contains("unknown encoding")
        );
    }

    #[test]
    fn binaries_are_refused() {
        assert!(read(b"PK\x03\x04xx", None).unwrap_err().contains("xlsx"));
        assert!(
            read(b"a\0b", None)
                .unwrap_err()
                .contains("NUL byte at offset 1")
        );
        assert!(read(b"\xFF\xFE\0\0", None).unwrap_err().contains("UTF-32"));
        let nul = decode(Box::new(Cursor::new(b"ab\0".to_vec())), None).err();
        assert!(
            matches!(nul, Some(RejectReason::Nul { offset: 2 })),
            "{nul:?}"
        );
    }
}
