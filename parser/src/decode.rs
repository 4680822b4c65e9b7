//! Bytes to UTF-8 text: byte-order marks, declared encodings, and the early refusal of
//! files that are not text at all.

use std::io::{BufReader, Cursor, Read};

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
    /// Whether the file started with a byte-order mark.
    pub bom: bool,
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
            bom: bom.is_some(),
            head: text_head,
        });
    }
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(input));
    let mut reader: Box<dyn Read + Send> = Box::new(LargeReads(BufReader::with_capacity(
        1 << 16,
        DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .bom_sniffing(true)
            .build(whole),
    )));
    let mut text_head = Vec::with_capacity(PEEK);
    (&mut reader)
        .take(PEEK as u64)
        .read_to_end(&mut text_head)
        .map_err(RejectReason::Io)?;
    Ok(Decoded {
        reader: Box::new(Cursor::new(text_head.clone()).chain(reader)),
        validate: false,
        encoding: encoding.name(),
        bom: bom.is_some(),
        head: text_head,
    })
}

/// Reads the decoder only in large chunks. Asked for fewer than 4 bytes at the end of the
/// file, `encoding_rs_io` 0.1.8 hands out part of the last character and drops the rest
/// (invalid UTF-8 out; found by the `decode` fuzz target). Every read here goes through
/// [`BufReader::read`], which asks the decoder for a whole buffer (64 KiB) or more; this
/// type implements `read` alone, so `read_to_end` and the like cannot bypass the buffer
/// as `BufReader`'s own versions do.
struct LargeReads<R>(BufReader<R>);

impl<R: Read> Read for LargeReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
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

    /// Found by the `decode` fuzz target: the character at the very end of a decoded file
    /// lost its last bytes when the reader asked for fewer than 4 (invalid UTF-8 out).
    #[test]
    fn the_last_character_of_a_decoded_file_is_whole() {
        for fill in (PEEK - 4..PEEK + 2).chain(2 * PEEK - 4..2 * PEEK + 2) {
            let mut bytes = vec![b'a'; fill];
            bytes.push(0x81); // a Shift_JIS lead byte with nothing after it
            let (text, _, _) = read(&bytes, Some("shift_jis")).expect("valid UTF-8 out");
            assert_eq!(text.len(), fill + 3, "fill {fill}");
            assert!(text.ends_with('\u{FFFD}'), "fill {fill}");
            // Byte by byte too: no read size may lose a byte.
            let d = decode(Box::new(Cursor::new(bytes.clone())), Some("shift_jis")).unwrap();
            let mut out = Vec::new();
            let mut reader = d.reader;
            let mut one = [0u8; 1];
            while reader.read(&mut one).unwrap() == 1 {
                out.push(one[0]);
            }
            assert_eq!(String::from_utf8(out).expect("valid UTF-8 out"), text);
        }
    }
}
