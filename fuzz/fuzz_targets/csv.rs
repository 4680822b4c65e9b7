//! Delimited text: quotes, line ends, delimiters, encodings, limits.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(data, roster_shared::model::envelope::Format::Csv);
});
