//! What every parser fuzz target checks: whatever the bytes, `parse` returns (a file or a
//! refusal) without panicking, and a parsed file's snapshot reads back in order, every
//! record decodes, and every row error names a line from 1 on.

use std::io::Cursor;

use roster_parser::{ParseLimits, ParseOptions, parse};
use roster_shared::model::envelope::Format;
use roster_shared::model::snapshot::SnapshotReader;
use roster_shared::stage::NoProgress;

/// Parses `data` as `format` and checks what came out.
pub fn check(data: &[u8], format: Format) {
    let options = ParseOptions {
        file_name: "fuzz".into(),
        format,
        encoding: None,
        mappings: Vec::new(),
        limits: ParseLimits {
            max_rows: 100_000,
            ..ParseLimits::default()
        },
        // Small, so the fuzzer also drives the sort in runs and their merge.
        sort_memory: 4096,
        spill_dir: None,
    };
    let Ok(parsed) = parse(Box::new(Cursor::new(data.to_vec())), &options, &NoProgress) else {
        return;
    };
    assert!(parsed.accepted <= parsed.rows_read);
    for e in &parsed.errors {
        assert!(e.line.is_none_or(|l| l >= 1), "{e:?}");
    }
    let mut snapshot = Vec::new();
    parsed.write_snapshot(&mut snapshot).expect("writing to memory");
    let mut people = 0;
    for entry in SnapshotReader::new(&snapshot[..]) {
        let entry = entry.expect("the parser's own snapshot reads back, sorted");
        if !entry.protected {
            entry.person().expect("every record decodes");
            people += 1;
        }
    }
    assert_eq!(people, parsed.accepted);
}
