//! Bytes to UTF-8: byte-order marks, declared encodings, binary refusal. The first byte
//! picks the declared encoding; the rest is the file.
#![no_main]

use std::io::{Cursor, Read};

const LABELS: [Option<&str>; 6] = [
    None,
    Some("windows-1252"),
    Some("utf-16le"),
    Some("iso-8859-1"),
    Some("shift_jis"),
    Some("no-such-encoding"),
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let label = LABELS[usize::from(pick) % LABELS.len()];
    let Ok(decoded) = roster_parser::decode::decode(Box::new(Cursor::new(file.to_vec())), label)
    else {
        return;
    };
    let validate = decoded.validate;
    let mut text = Vec::new();
    let mut reader = decoded.reader;
    if reader.read_to_end(&mut text).is_ok() && !validate {
        // Decoded input is UTF-8 by construction.
        assert!(std::str::from_utf8(&text).is_ok());
    }
});
