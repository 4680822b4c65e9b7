//! The parser over whole files: every header alias, delimiter, encoding and bad-input case.

use std::io::Cursor;

use roster_parser::{ParseLimits, ParseOptions, ParsedFile, Rejection, parse};
use roster_shared::model::envelope::{Format, Severity};
use roster_shared::model::person::{Field, MappingTarget, Person};
use roster_shared::model::snapshot::{SnapshotEntry, SnapshotReader};
use roster_shared::stage::NoProgress;

fn run(bytes: &[u8], format: Format) -> Result<ParsedFile, Rejection> {
    run_limited(bytes, format, ParseLimits::default())
}

fn run_limited(bytes: &[u8], format: Format, limits: ParseLimits) -> Result<ParsedFile, Rejection> {
    let options = ParseOptions {
        format,
        limits,
        ..options()
    };
    parse(Box::new(Cursor::new(bytes.to_vec())), &options, &NoProgress)
}

/// How the tests read a file unless they say otherwise: `people.csv`, detected format,
/// UTF-8, no tenant mappings, organizations or value rules, the default limits.
fn options() -> ParseOptions {
    ParseOptions {
        file_name: "people.csv".into(),
        organizations: Vec::new(),
        value_rules: Default::default(),
        format: Format::Auto,
        encoding: None,
        mappings: vec![],
        limits: ParseLimits::default(),
        sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
        spill_dir: None,
        ignore_encoding: false,
        bundle: Default::default(),
    }
}

fn snapshot_bytes(parsed: &ParsedFile) -> Vec<u8> {
    let mut out = Vec::new();
    parsed.write_snapshot(&mut out).unwrap();
    out
}

fn entries(parsed: &ParsedFile) -> Vec<SnapshotEntry> {
    let out = snapshot_bytes(parsed);
    SnapshotReader::new(&out[..])
        .collect::<Result<_, _>>()
        .unwrap()
}

fn people(bytes: &[u8]) -> Vec<Person> {
    let parsed = run(bytes, Format::Auto).unwrap_or_else(|e| panic!("rejected: {e}"));
    assert!(parsed.errors.is_empty(), "row errors: {:?}", parsed.errors);
    entries(&parsed)
        .iter()
        .map(|e| e.person().unwrap())
        .collect()
}

fn rejected(bytes: &[u8]) -> Rejection {
    match run(bytes, Format::Auto) {
        Err(rejection) => rejection,
        Ok(p) => panic!("accepted with {} rows", p.rows_read),
    }
}

fn rejection(bytes: &[u8]) -> String {
    rejected(bytes).to_string()
}

#[test]
fn every_email_alias_is_the_key() {
    for header in [
        "Email",
        "Email ID",
        "Primary Email",
        "mail",
        "EmailAddress",
        "email_address",
        "E-Mail",
    ] {
        let csv = format!("{header},Name\n Frank.Williams@Widget.com ,Frank Williams\n");
        let p = people(csv.as_bytes());
        assert_eq!(p.len(), 1, "{header}");
        assert_eq!(p[0].email, "frank.williams@widget.com", "{header}");
    }
}

/// Reads one field of a person.
type Getter = fn(&Person) -> Option<&str>;

#[test]
fn field_aliases_map_to_canonical_fields() {
    let cases: &[(&str, &str, Getter)] = &[
        ("Designation", "Engineer", |p| p.job_title.as_deref()),
        ("Title", "Engineer", |p| p.job_title.as_deref()),
        ("Job Title", "Engineer", |p| p.job_title.as_deref()),
        ("Department", "IT", |p| p.department.as_deref()),
        ("Phone", "+91 1", |p| p.phone.as_deref()),
        ("Mobile", "+91 1", |p| p.phone.as_deref()),
        ("Group", "HQ", |p| p.group.as_deref()),
        ("Office", "HQ", |p| p.group.as_deref()),
        ("Organization", "Widget USA", |p| p.organization.as_deref()),
        ("Company", "Widget USA", |p| p.organization.as_deref()),
        ("Site", "Chicago Sales Office", |p| p.site.as_deref()),
        ("Location", "Room 202", |p| p.location.as_deref()),
        ("Locale", "en-US", |p| p.locale.as_deref()),
        ("Language", "en-US", |p| p.locale.as_deref()),
        ("Time Zone", "Paris", |p| p.time_zone.as_deref()),
        ("Employee ID", "E1", |p| p.employee_id.as_deref()),
        ("First Name", "Amit", |p| p.first_name.as_deref()),
        ("Given Name", "Amit", |p| p.first_name.as_deref()),
        ("Last Name", "Kumar", |p| p.last_name.as_deref()),
        ("Surname", "Kumar", |p| p.last_name.as_deref()),
        ("Display Name", "AK", |p| p.display_name.as_deref()),
        ("Manager Email", "boss@x.com", |p| {
            p.manager_email.as_deref()
        }),
    ];
    for (header, value, get) in cases {
        let csv = format!("email,{header}\na@x.com,{value}\n");
        let p = &people(csv.as_bytes())[0];
        assert_eq!(get(p), Some(*value), "{header}");
    }
}

#[test]
fn status_aliases_and_values() {
    for header in ["Status", "Active", "Enabled"] {
        for (value, active) in [
            ("active", true),
            ("inactive", false),
            ("true", true),
            ("false", false),
            ("1", true),
            ("0", false),
            ("yes", true),
            ("no", false),
            ("", true),
        ] {
            let csv = format!("Email,{header}\na@x.com,{value}\n");
            assert_eq!(people(csv.as_bytes())[0].active, active, "{header}={value}");
        }
    }
    let parsed = run(
        b"Email,Status\na@x.com,gone fishing\nb@x.com,active\n",
        Format::Auto,
    )
    .unwrap();
    assert_eq!(parsed.accepted, 1);
    assert_eq!(parsed.rejected, 1);
    let e = &parsed.errors[0];
    assert_eq!((e.line, e.column.as_deref()), (Some(2), Some("Status")));
    assert!(
        e.message.contains("\"gone fishing\" is not a status"),
        "{}",
        e.message
    );
}

#[test]
fn name_splits_into_first_and_last() {
    let p = &people(b"Name,Email\nPierre Lef\xC3\xA8vre,p@x.com\n")[0];
    assert_eq!(p.first_name.as_deref(), Some("Pierre"));
    assert_eq!(p.last_name.as_deref(), Some("Lefèvre"));
    assert_eq!(p.display_name.as_deref(), Some("Pierre Lefèvre"));
}

#[test]
fn delimiters_quotes_crlf_and_bom() {
    let expected = ["a@x.com", "b@x.com"];
    let files: [&[u8]; 5] = [
        b"Email,Title\r\na@x.com,\"Engineer, Senior\"\r\nb@x.com,\"Says \"\"hi\"\"\"\r\n",
        b"Email;Title\na@x.com;Engineer, Senior\nb@x.com;x\n",
        b"Email\tTitle\na@x.com\tEngineer, Senior\nb@x.com\tx\n",
        b"\xEF\xBB\xBFEmail,Title\na@x.com,\"Engineer, Senior\"\nb@x.com,x",
        b"Email,Title\n\"a@x.com\",\"Engineer,\nSenior\"\n\nb@x.com,x\n",
    ];
    for file in files {
        let p = people(file);
        let emails: Vec<&str> = p.iter().map(|p| p.email.as_str()).collect();
        assert_eq!(emails, expected, "{}", String::from_utf8_lossy(file));
        assert!(p[0].job_title.as_deref().unwrap().starts_with("Engineer,"));
    }
    assert_eq!(
        people(b"Email,Title\na@x.com,\"Says \"\"hi\"\"\"\n")[0]
            .job_title
            .as_deref(),
        Some("Says \"hi\"")
    );
}

#[test]
fn tsv_format_forces_tabs() {
    let parsed = run(b"Email\tName,with comma\na@x.com\tA B\n", Format::Tsv).unwrap();
    assert_eq!(parsed.accepted, 1);
}

#[test]
fn the_seed_people_file_reads_as_tsv() {
    let file = "Primary Email\tSource\tName\tOrganization\tJob Title\tSite\tLocation\tLocale\tTime Zone\tTime Format 24h\n\
frank.williams@widget.com\tActive Directory\tFrank Williams\tWidget USA\tSales Executive\tChicago Sales Office\tRoom 202\ten-US\tCentral Time (US & Canada)\t0\n\
pierre.lefevre@widget.com\tActive Directory\tPierre Lefèvre\tWidget France\tAccount Manager\tParis Sales Office\tRoom 312\tfr\tParis\t1\n";
    let p = people(file.as_bytes());
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].organization.as_deref(), Some("Widget USA"));
    assert_eq!(
        p[0].time_zone.as_deref(),
        Some("Central Time (US & Canada)")
    );
    assert_eq!(p[1].extra["Source"], "Active Directory");
    assert_eq!(p[1].extra["Time Format 24h"], "1");
}

#[test]
fn utf16_with_bom_is_decoded() {
    let text = "Email,Name\r\nz@x.com,Zoë Ünal\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let p = people(&bytes);
    assert_eq!(p[0].first_name.as_deref(), Some("Zoë"));
}

#[test]
fn declared_encoding_is_used_for_bomless_files() {
    let options = ParseOptions {
        file_name: "latin.csv".into(),
        organizations: Vec::new(),
        value_rules: Default::default(),
        format: Format::Csv,
        encoding: Some("windows-1252".into()),
        mappings: vec![],
        limits: ParseLimits::default(),
        sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
        spill_dir: None,
        ignore_encoding: false,
        bundle: Default::default(),
    };
    let parsed = parse(
        Box::new(Cursor::new(b"Email,Name\na@x.com,Ren\xE9 Roy\n".to_vec())),
        &options,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        entries(&parsed)[0].person().unwrap().first_name.as_deref(),
        Some("René")
    );
}

#[test]
fn files_that_are_not_text_are_rejected_whole() {
    let msg = rejection(b"Email,Name\na@x.com,Ren\xE9 Roy\n");
    assert!(
        msg.starts_with("people.csv: line 2, column 2 (\"Name\"): not valid UTF-8"),
        "{msg}"
    );
    let r = rejected(b"Email,Name\na@x.com,Ren\xE9 Roy\n");
    assert_eq!(
        (r.file.as_str(), r.line(), r.column(), r.field()),
        ("people.csv", Some(2), Some(2), Some("Name"))
    );
    assert!(rejection(b"PK\x03\x04\x14\0\0").contains("xlsx"));
    assert!(rejection(b"Email\na@x.com\0\n").contains("NUL byte"));
    assert!(rejection(b"").contains("empty"));
}

#[test]
fn a_file_without_an_email_column_is_rejected_whole() {
    let msg = rejection(b"Name,Phone\nA B,1\n");
    assert!(msg.starts_with("people.csv: no email column"), "{msg}");
    assert!(msg.contains("found: Name, Phone"), "{msg}");
    let msg = rejection(b"Email,mail\na@x.com,b@x.com\n");
    assert!(msg.contains("both map to email"), "{msg}");
}

#[test]
fn tenant_mappings_rescue_unknown_headers() {
    let options = ParseOptions {
        file_name: "fr.csv".into(),
        organizations: Vec::new(),
        value_rules: Default::default(),
        format: Format::Auto,
        encoding: None,
        mappings: vec![("courriel".into(), MappingTarget::Field(Field::Email))],
        limits: ParseLimits::default(),
        sort_memory: roster_parser::DEFAULT_SORT_MEMORY,
        spill_dir: None,
        ignore_encoding: false,
        bundle: Default::default(),
    };
    let parsed = parse(
        Box::new(Cursor::new(b"Courriel,Nom\na@x.com,A\n".to_vec())),
        &options,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(parsed.accepted, 1);
}

#[test]
fn rows_fail_alone_with_line_and_column() {
    let file = b"Email,Name,Status\n\
a@x.com,A A,active\n\
,No Email,active\n\
not-an-email,Bad,active\n\
b@x.com,B B\n\
A@X.com,Dup,active\n\
c@x.com,C C,active\n";
    let parsed = run(file, Format::Auto).unwrap();
    assert_eq!(parsed.rows_read, 6);
    assert_eq!(parsed.accepted, 2, "a and c");
    assert_eq!(parsed.rejected, 4);
    let errs: Vec<(Option<u64>, Option<&str>, &str)> = parsed
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_deref(), e.message.as_str()))
        .collect();
    assert_eq!(errs[0], (Some(3), Some("Email"), "missing email"));
    assert_eq!(errs[1].0, Some(4));
    assert!(errs[1].2.contains("not an email address"));
    assert_eq!(errs[2].0, Some(5));
    assert!(errs[2].2.contains("expected 3 fields"), "{}", errs[2].2);
    assert_eq!(errs[3].0, Some(6));
    assert!(
        errs[3]
            .2
            .contains("duplicate email a@x.com: already on line 2"),
        "{}",
        errs[3].2
    );
    // b@x.com's row failed, but its email was readable: it is protected, not absent.
    let snap = entries(&parsed);
    let protected: Vec<&str> = snap
        .iter()
        .filter(|e| e.protected)
        .map(|e| e.email.as_str())
        .collect();
    assert_eq!(protected, ["b@x.com"]);
}

#[test]
fn header_only_and_blank_rows() {
    let parsed = run(b"Email,Name\n\n,\n", Format::Auto).unwrap();
    assert_eq!(
        (parsed.rows_read, parsed.accepted, parsed.rejected),
        (0, 0, 0)
    );
}

#[test]
fn snapshot_is_sorted_by_email() {
    let p = people(b"Email\nc@x.com\na@x.com\nB@x.com\n");
    let emails: Vec<&str> = p.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, ["a@x.com", "b@x.com", "c@x.com"]);
}

#[test]
fn json_web_service_shape() {
    let json = br#"{
"employees": [{
"name": "Amit Kumar",
"designation": "Software Engineer",
"group": "IT",
"status": "active",
"email": "ak@veris.in",
"phone": "+91XXXXXXXXXX"
},
{"name": "Ex Employee", "email": "ex@veris.in", "status": "inactive", "badge": 42, "tags": ["a"]}
], "next": null}"#;
    let p = people(json);
    assert_eq!(p.len(), 2);
    let ak = &p[0];
    assert_eq!(
        (ak.first_name.as_deref(), ak.last_name.as_deref()),
        (Some("Amit"), Some("Kumar"))
    );
    assert_eq!(ak.job_title.as_deref(), Some("Software Engineer"));
    assert_eq!(ak.group.as_deref(), Some("IT"));
    assert_eq!(ak.phone.as_deref(), Some("+91XXXXXXXXXX"));
    assert!(ak.active);
    assert!(!p[1].active);
    assert_eq!(p[1].extra["badge"], "42");
    assert_eq!(p[1].extra["tags"], "[\"a\"]");
    // A bare list works too, and the format is picked by content.
    assert_eq!(
        people(br#"[{"Email": "a@x.com", "Enabled": true}]"#).len(),
        1
    );
}

#[test]
fn json_rows_fail_alone_and_bad_json_fails_whole() {
    let json = b"{\"employees\": [\n{\"email\": \"a@x.com\"},\n{\"name\": \"No Mail\"},\n{\"email\": \"b@x.com\", \"status\": \"??\"},\n7\n]}";
    let parsed = run(json, Format::Json).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (1, 3));
    assert_eq!(parsed.errors[0].line, Some(3));
    assert_eq!(
        parsed.errors[0].column.as_deref(),
        Some("employees[1].email")
    );
    assert_eq!(
        parsed.errors[1].column.as_deref(),
        Some("employees[2].status")
    );
    assert_eq!(parsed.errors[2].column.as_deref(), Some("employees[3]"));

    let msg = rejection(b"{\"employees\": [{\"email\": \"a@x.com\"}");
    assert!(msg.starts_with("people.csv: invalid JSON"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
    let msg = rejection(br#"{"staff": []}"#);
    assert!(msg.contains("no list of people"), "{msg}");
}

/// `n` people as CSV rows under `Email,Name,City`, with `line_end`.
fn hundred(line_end: &str, n: usize) -> String {
    let mut out = format!("Email,Name,City{line_end}");
    for i in 0..n {
        out.push_str(&format!("p{i:03}@x.com,Person {i},Paris{line_end}"));
    }
    out
}

#[test]
fn an_unclosed_quote_rejects_the_file_at_the_line_its_record_began() {
    // The 81st person's city opens a quote that never closes: 20 rows from the end.
    let file = hundred("\n", 100).replace(
        "p080@x.com,Person 80,Paris",
        "p080@x.com,Person 80,\"Boston",
    );
    let r = rejected(file.as_bytes());
    assert_eq!(r.line(), Some(82), "{r}");
    assert!(r.to_string().contains("quote"), "{r}");
    // Windows line ends: the same line.
    let crlf = hundred("\r\n", 100).replace(
        "p080@x.com,Person 80,Paris",
        "p080@x.com,Person 80,\"Boston",
    );
    assert_eq!(rejected(crlf.as_bytes()).line(), Some(82));
}

#[test]
fn a_quoted_value_running_over_the_line_limit_rejects_the_file() {
    let limits = ParseLimits {
        max_record_lines: 3,
        ..ParseLimits::default()
    };
    let ok = "Email,Address\na@x.com,\"1 Main St\nFloor 2\nRoom 3\"\nb@x.com,x\n";
    assert_eq!(
        run_limited(ok.as_bytes(), Format::Auto, limits)
            .unwrap()
            .accepted,
        2
    );
    let long = "Email,Address\na@x.com,x\nb@x.com,\"1\n2\n3\n4\n5\n6\"\nc@x.com,x\n";
    let r = run_limited(long.as_bytes(), Format::Auto, limits).unwrap_err();
    assert_eq!(r.line(), Some(3), "{r}");
    // A quote that closes a few lines later, leaving a record with too many fields:
    // the people it swallowed would otherwise be deactivated.
    let swallowed = "Email,Name,City\na@x.com,A,\"Boston\nb@x.com,B,Paris\nc@x.com,C,\"Rome\"\nd@x.com,D,Oslo\n";
    let r = rejected(swallowed.as_bytes());
    assert_eq!(r.line(), Some(2), "{r}");
}

#[test]
fn a_file_cut_mid_record_is_rejected() {
    let r = rejected(b"Email,Name,Title\na@x.com,A,Engineer\nb@x.com,B");
    assert_eq!(r.line(), Some(3), "{r}");
    assert!(r.to_string().contains("cut"), "{r}");
    // A short row that ends its line is a row error, not a cut file.
    let parsed = run(b"Email,Name,Title\na@x.com,B\nb@x.com,B,T\n", Format::Auto).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (1, 1));
}

#[test]
fn a_huge_cell_is_a_row_error() {
    let big = "x".repeat(70 * 1024);
    let file = format!("Email,Notes,Name\na@x.com,{big},A\nb@x.com,short,B\n");
    let parsed = run(file.as_bytes(), Format::Auto).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (1, 1));
    let e = &parsed.errors[0];
    assert_eq!((e.line, e.column.as_deref()), (Some(2), Some("Notes")));
    assert!(e.message.contains("KiB"), "{}", e.message);
}

#[test]
fn line_numbers_are_the_lines_an_editor_shows() {
    for line_end in ["\n", "\r\n", "\r"] {
        let file = format!(
            "Email,Name{line_end}a@x.com,A{line_end},No Mail{line_end}b@x.com,B{line_end}A@x.com,Dup{line_end}"
        );
        let parsed = run(file.as_bytes(), Format::Auto).unwrap();
        let errs: Vec<(Option<u64>, &str)> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(errs[0], (Some(3), "missing email"), "{line_end:?}");
        assert_eq!(errs[1].0, Some(5), "{line_end:?}");
        assert!(
            errs[1].1.contains("already on line 2"),
            "{line_end:?}: {}",
            errs[1].1
        );
        // UTF-16 with BOM: the same lines.
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(file.encode_utf16().flat_map(u16::to_le_bytes));
        let parsed = run(&utf16, Format::Auto).unwrap();
        assert_eq!(parsed.errors[0].line, Some(3), "UTF-16 {line_end:?}");
    }
    // A quoted value over two lines: the next row's line counts both.
    let parsed = run(
        b"Email,Address\r\na@x.com,\"1 Main\r\nFloor 2\"\r\n,x\r\n",
        Format::Auto,
    )
    .unwrap();
    assert_eq!(parsed.errors[0].line, Some(4));
}

#[test]
fn control_characters_are_row_errors() {
    // A NUL far past the first 8 KiB (which the encoding check looks at).
    let mut file = hundred("\n", 400);
    file.push_str(
        "nul@x.com,Bad\u{0}Name,Paris\nbell@x.com,Ring\u{7},Oslo\ntab@x.com,Tab\tOk,Rome\n",
    );
    let parsed = run(file.as_bytes(), Format::Auto).unwrap();
    assert!(file.find('\u{0}').unwrap() > 8192);
    assert_eq!((parsed.accepted, parsed.rejected), (401, 2));
    let e = &parsed.errors[0];
    assert_eq!((e.line, e.column.as_deref()), (Some(402), Some("Name")));
    assert!(e.message.contains("control character"), "{}", e.message);
    // In JSON too.
    let parsed = run(
        b"[{\"email\": \"a@x.com\", \"name\": \"A\\u0000\"}]",
        Format::Json,
    )
    .unwrap();
    assert_eq!(parsed.rejected, 1);
}

#[test]
fn more_rows_than_the_limit_reject_the_file() {
    let limits = ParseLimits {
        max_rows: 50,
        ..ParseLimits::default()
    };
    assert!(run_limited(hundred("\n", 50).as_bytes(), Format::Auto, limits).is_ok());
    let r = run_limited(hundred("\n", 51).as_bytes(), Format::Auto, limits).unwrap_err();
    assert!(r.to_string().contains("more than 50 rows"), "{r}");
    let json: String = format!(
        "[{}]",
        (0..51)
            .map(|i| format!("{{\"email\": \"p{i}@x.com\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(run_limited(json.as_bytes(), Format::Json, limits).is_err());
}

/// Rows are collected on a thread of their own, thousands at a time: a long file still
/// stops at the row over the limit, and a broken row before that row is what refuses it.
#[test]
fn a_long_file_is_refused_at_the_first_problem_whoever_finds_it() {
    let limits = ParseLimits {
        max_rows: 3000,
        ..ParseLimits::default()
    };
    let long = hundred("\r\n", 9000);
    let r = run_limited(long.as_bytes(), Format::Auto, limits).unwrap_err();
    assert!(r.to_string().contains("more than 3000 rows"), "{r}");
    // An unclosed quote at row 2500 (line 2501): refused for it, not for the rows.
    let broken = long.replace(
        "p2499@x.com,Person 2499,Paris",
        "p2499@x.com,Person 2499,\"Boston",
    );
    let r = run_limited(broken.as_bytes(), Format::Auto, limits).unwrap_err();
    assert!(r.to_string().contains("line 2501"), "{r}");
    assert!(!r.to_string().contains("rows"), "{r}");
    // Within the limit, every row arrives, in order, with its line.
    let parsed = run(hundred("\r\n", 9000).as_bytes(), Format::Auto).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (9000, 0));
    let bad = hundred("\r\n", 9000).replace("p7000@x.com", "not-an-email");
    let parsed = run(bad.as_bytes(), Format::Auto).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (8999, 1));
    assert_eq!(parsed.errors[0].line, Some(7002));
}

#[test]
fn a_formula_is_not_an_email() {
    let parsed = run(
        b"Email,Name\n\"=HYPERLINK(\"\"http://evil.example\"\")@x.com\",Eve\nok@x.com,Ok\n",
        Format::Auto,
    )
    .unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (1, 1));
}

/// A CRLF file mixing repeated emails (spread over the whole file), rows rejected
/// with their email kept, rows with no usable email and blank lines.
fn mixed_file(rows: usize) -> Vec<u8> {
    let mut csv = String::from("Email,Name,Title\r\n");
    for i in 0..rows {
        let n = (i * 7919) % (rows / 2);
        match i % 37 {
            0 => csv.push_str(&format!("p{n}@x.com,too few fields\r\n")),
            1 => csv.push_str("not an email,Nobody,T\r\n"),
            2 => csv.push_str("\r\n"),
            _ => csv.push_str(&format!("P{n}@X.com,Person {i},T{}\r\n", i % 5)),
        }
    }
    csv.into_bytes()
}

fn parse_sorting_in(
    bytes: &[u8],
    sort_memory: usize,
    dir: &std::path::Path,
) -> Result<ParsedFile, Rejection> {
    let options = ParseOptions {
        file_name: "people.csv".into(),
        organizations: Vec::new(),
        value_rules: Default::default(),
        format: Format::Auto,
        encoding: None,
        mappings: vec![],
        limits: ParseLimits::default(),
        sort_memory,
        spill_dir: Some(dir.to_owned()),
        ignore_encoding: false,
        bundle: Default::default(),
    };
    parse(Box::new(Cursor::new(bytes.to_vec())), &options, &NoProgress)
}

/// `file` parsed sorting in memory and sorting in runs of 2 KiB in `scratch`, checked to
/// give the same snapshot, row errors and counts: (in memory, in runs).
fn sorted_both_ways(file: &[u8], scratch: &std::path::Path) -> (ParsedFile, ParsedFile) {
    let in_memory = parse_sorting_in(file, roster_parser::DEFAULT_SORT_MEMORY, scratch).unwrap();
    let in_runs = parse_sorting_in(file, 2048, scratch).unwrap();
    assert_eq!(in_memory.runs, 1);
    assert_eq!(snapshot_bytes(&in_runs), snapshot_bytes(&in_memory));
    assert_eq!(in_runs.errors, in_memory.errors);
    // One line per snapshot entry, the same either way.
    assert_eq!(in_runs.lines, in_memory.lines);
    assert_eq!(in_memory.lines.len(), entries(&in_memory).len());
    assert_eq!(
        (in_runs.rows_read, in_runs.rejected, in_runs.accepted),
        (in_memory.rows_read, in_memory.rejected, in_memory.accepted)
    );
    (in_memory, in_runs)
}

#[test]
fn a_file_sorted_in_runs_on_disk_matches_one_sorted_in_memory() {
    let file = mixed_file(3000);
    let scratch = tempfile::tempdir().unwrap();
    let (in_memory, in_runs) = sorted_both_ways(&file, scratch.path());
    // Enough runs that some are merged into one before the end (32 at a time).
    assert!(in_runs.runs > 64, "sorted in {} runs", in_runs.runs);
    // The file has what the comparison is meant to cover.
    assert!(in_memory.accepted > 1000);
    let duplicates = in_memory
        .errors
        .iter()
        .filter(|e| e.message.starts_with("duplicate email"))
        .count();
    assert!(duplicates > 1000, "{duplicates} duplicates");
    assert!(
        in_memory
            .errors
            .iter()
            .any(|e| e.message.contains("fields"))
    );
    // The first readable row of an email wins, wherever its run: p0's is the 1501st
    // row (its 1st, on line 2, lacks a field), its later ones are duplicates of it.
    let first = entries(&in_runs)[0].person().unwrap();
    assert_eq!(first.email, "p0@x.com");
    assert_eq!(in_runs.lines[0], 1502, "the line of the row that won");
    assert!(
        format!("{first:?}").contains("\"Person 1500\""),
        "{first:?}"
    );
    // Runs are unnamed files: nothing is left in the scratch folder.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

/// The web-service JSON shape sorted in runs: repeated emails, records that are not
/// objects, records without an email and a bad status, as the CSV above.
#[test]
fn a_json_file_sorted_in_runs_matches_one_sorted_in_memory() {
    let records: Vec<String> = (0..2000)
        .map(|i| {
            let n = (i * 7919) % 1000;
            match i % 41 {
                0 => "7".to_owned(),
                1 => format!(r#"{{"name": "No Mail {i}"}}"#),
                2 => format!(r#"{{"email": "p{n}@x.com", "status": "??"}}"#),
                _ => format!(r#"{{"email": "P{n}@x.com", "name": "Person {i}"}}"#),
            }
        })
        .collect();
    let file = format!("{{\"employees\": [\n{}\n]}}", records.join(",\n")).into_bytes();
    let scratch = tempfile::tempdir().unwrap();
    let (in_memory, in_runs) = sorted_both_ways(&file, scratch.path());
    assert!(in_runs.runs > 32, "sorted in {} runs", in_runs.runs);
    assert!(in_memory.accepted > 900);
    assert!(
        in_memory
            .errors
            .iter()
            .any(|e| e.message.starts_with("duplicate email"))
    );
}

/// What Excel saves as "Unicode text" with semicolons: UTF-16LE with a BOM, CRLF line
/// ends and a quoted value spanning two lines, sorted in runs as in memory (the same
/// line numbers in the row errors).
#[test]
fn a_utf16_semicolon_file_sorted_in_runs_matches_one_sorted_in_memory() {
    let mut text = String::from("Email;Name;Title\r\n");
    for i in 0..1500 {
        let n = (i * 7919) % 700;
        match i % 29 {
            0 => text.push_str(&format!("p{n}@x.com;\"Two\r\nLines {i}\";T\r\n")),
            1 => text.push_str(&format!("p{n}@x.com;only two\r\n")),
            _ => text.push_str(&format!("p{n}@x.com;Person {i};T{}\r\n", i % 3)),
        }
    }
    let mut file = vec![0xFF, 0xFE];
    file.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let scratch = tempfile::tempdir().unwrap();
    let (in_memory, in_runs) = sorted_both_ways(&file, scratch.path());
    assert!(in_runs.runs > 32, "sorted in {} runs", in_runs.runs);
    assert_eq!(in_memory.rows_read, 1500);
    assert!(
        in_memory
            .errors
            .iter()
            .any(|e| e.message.contains("fields"))
    );
    // The row after the first two-line value starts one line further down.
    assert!(
        in_memory
            .errors
            .iter()
            .any(|e| e.line == Some(4) && e.message.contains("fields")),
        "{:?}",
        &in_memory.errors[..3]
    );
}

#[test]
fn a_scratch_folder_that_cannot_take_a_run_refuses_the_parse_as_scratch_trouble() {
    let missing = std::path::Path::new("/nonexistent/roster-scratch");
    let err = parse_sorting_in(&mixed_file(500), 1024, missing).unwrap_err();
    assert!(
        matches!(err.reason, roster_parser::RejectReason::Scratch(_)),
        "{err}"
    );
    assert!(err.to_string().contains("scratch folder"), "{err}");
}

/// A fixture of the repository's `tests/fixtures`.
fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same text as UTF-8, UTF-8 with a byte-order mark and UTF-16LE with one.
fn encodings(text: &str) -> [(&'static str, Vec<u8>); 3] {
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    [
        ("utf-8", text.as_bytes().to_vec()),
        ("utf-8 with BOM", bom),
        ("utf-16le", utf16),
    ]
}

/// The fixture's text, whatever its encoding (UTF-8 with or without BOM, UTF-16LE).
fn fixture_text(name: &str) -> String {
    let bytes = fixture(name);
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => String::from_utf16(
            &rest
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).unwrap(),
        other => String::from_utf8(other.to_vec()).unwrap(),
    }
}

/// The people of a parse's snapshot (rows protected by a rejection left out).
fn persons(parsed: &ParsedFile) -> Vec<Person> {
    entries(parsed)
        .iter()
        .filter(|e| !e.protected)
        .map(|e| e.person().unwrap())
        .collect()
}

fn by_email<'a>(people: &'a [Person], email: &str) -> &'a Person {
    people
        .iter()
        .find(|p| p.email == email)
        .unwrap_or_else(|| panic!("{email} not among {people:?}"))
}

/// `Get-ADUser | Export-Csv` as Windows PowerShell writes it: a `#TYPE` line, every value
/// quoted, CRLF, one attribute under two names, bookkeeping columns, managers as
/// distinguished names, a service account without an email, a disabled account.
#[test]
fn a_powershell_active_directory_export_reads_in_every_encoding() {
    let text = fixture_text("ad-get-aduser.csv");
    assert!(
        text.starts_with("#TYPE "),
        "the fixture keeps its #TYPE line"
    );
    for (encoding, bytes) in encodings(&text) {
        let parsed = run(&bytes, Format::Auto).unwrap_or_else(|e| panic!("{encoding}: {e}"));
        assert_eq!(
            (
                parsed.rows_read,
                parsed.accepted,
                parsed.rejected,
                parsed.skipped
            ),
            (5, 4, 0, 1),
            "{encoding}: {:?}",
            parsed.errors
        );
        let people = persons(&parsed);
        let amit = by_email(&people, "ak@veris.in");
        assert_eq!(amit.first_name.as_deref(), Some("Amit"), "{encoding}");
        assert_eq!(amit.last_name.as_deref(), Some("Kumar"));
        assert_eq!(amit.job_title.as_deref(), Some("Software Engineer"));
        assert_eq!(amit.group.as_deref(), Some("HQ"));
        assert_eq!(amit.phone.as_deref(), Some("+91 22 4000 1001"));
        assert_eq!(amit.employee_id.as_deref(), Some("E1001"));
        assert_eq!(
            amit.manager_email.as_deref(),
            Some("neha.sharma@veris.in"),
            "{encoding}: the manager's name resolves to her email from the same file"
        );
        assert!(amit.active);
        for noise in ["whenChanged", "lastLogonTimestamp", "ObjectGUID", "SID"] {
            assert!(
                !amit.extra.contains_key(noise),
                "{noise} would change on every sync"
            );
        }
        assert_eq!(amit.extra["SamAccountName"], "akumar");
        let neha = by_email(&people, "neha.sharma@veris.in");
        assert_eq!(
            neha.phone.as_deref(),
            Some("+91 22 4000 1002"),
            "an empty OfficePhone falls back to telephoneNumber"
        );
        assert_eq!(neha.manager_email, None);
        let rahul = by_email(&people, "rahul.muller@veris.in");
        assert!(!rahul.active, "Enabled False is inactive");
        assert_eq!(rahul.last_name.as_deref(), Some("Müller"));
        assert_eq!(
            rahul.manager_email.as_deref(),
            Some("ak@veris.in"),
            "a name written in other case and spacing is the same name"
        );
        let priya = by_email(&people, "priya.iyer@veris.in");
        assert_eq!(priya.manager_email, None, "a manager outside the file");
        let notes: Vec<_> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_deref(), e.severity, e.message.as_str()))
            .collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(notes[0].0, Some(6), "the service account's physical line");
        assert_eq!(notes[0].2, Severity::Note);
        assert!(
            notes[0].3.starts_with("skipped") && notes[0].3.contains("svc-backup"),
            "{notes:?}"
        );
        assert_eq!(
            (notes[1].0, notes[1].1, notes[1].2),
            (Some(7), Some("Manager"), Severity::Note)
        );
        assert!(notes[1].3.contains("Rao"), "{notes:?}");
    }
}

/// `csvde -u` output: UTF-16LE, `DN`, `userAccountControl` flags, escaped commas in names.
#[test]
fn a_csvde_export_reads_account_control_and_managers() {
    let parsed = run(&fixture("ad-csvde.csv"), Format::Auto).unwrap();
    assert_eq!(
        (parsed.accepted, parsed.rejected, parsed.skipped),
        (3, 0, 1),
        "{:?}",
        parsed.errors
    );
    let people = persons(&parsed);
    let amit = by_email(&people, "ak@veris.in");
    assert!(amit.active, "512: a normal account");
    assert_eq!(amit.display_name.as_deref(), Some("Amit Kumar"));
    assert_eq!(amit.manager_email.as_deref(), Some("neha.sharma@veris.in"));
    assert!(by_email(&people, "neha.sharma@veris.in").active, "66048");
    let rahul = by_email(&people, "rahul.muller@veris.in");
    assert!(!rahul.active, "66050 has ACCOUNTDISABLE (0x2) set");
    assert_eq!(
        rahul.manager_email.as_deref(),
        Some("ak@veris.in"),
        r"a hex-escaped comma (\2C) is the same name"
    );
    assert!(parsed.errors[0].message.contains("svc-backup"));
}

#[test]
fn account_control_values_that_are_not_numbers_fail_the_row() {
    let file =
        "DN,mail,userAccountControl\n\"CN=a,DC=x\",a@x.com,disabled\n\"CN=b,DC=x\",b@x.com,514\n";
    let parsed = run(file.as_bytes(), Format::Auto).unwrap();
    assert_eq!((parsed.accepted, parsed.rejected), (1, 1));
    assert_eq!(parsed.errors[0].line, Some(2));
    assert_eq!(
        parsed.errors[0].column.as_deref(),
        Some("userAccountControl")
    );
    assert!(parsed.errors[0].message.contains("\"disabled\""));
    let b = entries(&parsed)[0].person().unwrap();
    assert!(!b.active, "514 is a disabled account");
}

/// Outside an Active Directory export, two columns for one field are still refused, and
/// a row without an email is still an error.
#[test]
fn the_active_directory_rules_stay_in_active_directory_exports() {
    assert!(rejection(b"Email,mail\na@x.com,a@x.com\n").contains("columns 1 (\"Email\") and 2"));
    let parsed = run(b"Email,Name,Office\n,No Mail,HQ\n", Format::Auto).unwrap();
    assert_eq!((parsed.rejected, parsed.skipped), (1, 0));
    assert_eq!(parsed.errors[0].severity, Severity::Error);
    let p = people(b"Email,whenChanged\na@x.com,1\n");
    assert_eq!(p[0].extra["whenChanged"], "1", "kept outside AD exports");
}

/// A People import file (the second seed's columns with `Disabled`, `Employee Number`
/// and `Manager`).
#[test]
fn a_people_file_reads_disabled_employee_number_and_manager() {
    let parsed = run(&fixture("people-import.csv"), Format::Auto).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let people = persons(&parsed);
    let pierre = by_email(&people, "pierre.lefevre@widget.com");
    assert!(pierre.active, "Disabled false");
    assert_eq!(pierre.employee_id.as_deref(), Some("W101"));
    assert_eq!(
        pierre.manager_email.as_deref(),
        Some("frank.williams@widget.com")
    );
    assert!(
        !by_email(&people, "old.timer@widget.com").active,
        "Disabled 1"
    );
    let bad = run(b"Email,Manager\na@x.com,Frank Williams\n", Format::Auto).unwrap();
    assert_eq!(bad.rejected, 1);
    assert_eq!(bad.errors[0].column.as_deref(), Some("Manager"));
    assert!(
        bad.errors[0].message.contains("manager's email"),
        "{:?}",
        bad.errors
    );
    assert!(
        rejection(b"Email,Status,Disabled\na@x.com,active,0\n").contains("\"Disabled\""),
        "two columns for activity are refused outside AD exports"
    );
}

fn run_with_organizations(bytes: &[u8], organizations: &[&str]) -> ParsedFile {
    let options = ParseOptions {
        organizations: organizations.iter().map(ToString::to_string).collect(),
        ..options()
    };
    parse(Box::new(Cursor::new(bytes.to_vec())), &options, &NoProgress).unwrap()
}

#[test]
fn a_row_naming_an_organization_the_tenant_does_not_list_fails_alone() {
    let parsed = run_with_organizations(
        &fixture("people-import.csv"),
        &["Widget USA", "Widget France"],
    );
    assert_eq!((parsed.accepted, parsed.rejected), (3, 1));
    let e = &parsed.errors[0];
    assert_eq!(e.line, Some(4));
    assert_eq!(e.column.as_deref(), Some("Organization"));
    assert!(
        e.message.contains("\"Widget Germany\"") && e.message.contains("\"Widget USA\""),
        "{}",
        e.message
    );
    let pierre = entries(&parsed)
        .iter()
        .map(|e| e.person().unwrap())
        .find(|p| p.email == "pierre.lefevre@widget.com")
        .unwrap();
    assert_eq!(
        pierre.organization.as_deref(),
        Some("Widget France"),
        "matched whatever the case and spaces, stored as listed"
    );
    let unlisted = run_with_organizations(&fixture("people-import.csv"), &[]);
    assert_eq!(unlisted.rejected, 0, "no list, no check");
}

/// The reject file: the rejected rows as written (a quoted value over two lines included,
/// and a duplicate found only at the end), with `line` and `error`, in the file's
/// delimiter, line ends and encoding; fixed and sent back, it reads without its `line`
/// and `error` columns.
#[test]
fn a_reject_file_keeps_the_customers_columns_and_comes_back() {
    let text = "Email;Name;Status\r\n\
a@x.com;A A;active\r\n\
b@x.com;\"B\r\nsecond line\";sometimes\r\n\
;No mail;active\r\n\
a@x.com;Dup;active\r\n\
c@x.com;C C;active\r\n";
    let expected = "Email;Name;Status;line;error\r\n\
b@x.com;\"B\r\nsecond line\";sometimes;3;\"\"\"sometimes\"\" is not a status; use active/inactive, true/false, yes/no, 1/0 or enabled/disabled\"\r\n\
;No mail;active;5;missing email\r\n\
a@x.com;Dup;active;6;\"duplicate email a@x.com: already on line 2; the first row was kept\"\r\n";
    for (encoding, bytes) in encodings(text) {
        let parsed = run(&bytes, Format::Auto).unwrap();
        assert_eq!(parsed.rejected, 3, "{encoding}");
        let layout = parsed.layout.expect("a delimited file");
        let mut out = Vec::new();
        let written = roster_parser::rejects::write(
            Box::new(Cursor::new(bytes.clone())),
            None,
            layout,
            &parsed.errors,
            roster_parser::DEFAULT_MAX_RECORD_LINES,
            &mut out,
        )
        .unwrap();
        assert_eq!(written, 3, "{encoding}");
        let (want, _) = encodings(expected)
            .into_iter()
            .find(|(e, _)| *e == encoding)
            .map(|(_, b)| (b, ()))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want),
            "{encoding}"
        );
        assert_eq!(
            out, want,
            "{encoding}: same bytes, byte-order mark included"
        );
        // Fixed and sent back.
        let fixed = expected
            .replace(";sometimes;", ";active;")
            .replace(";No mail;", "d@x.com;No mail;");
        let back = people(fixed.as_bytes());
        assert_eq!(back.len(), 3, "{back:?}");
        assert!(
            back.iter().all(|p| p.extra.is_empty()),
            "line and error are not data: {back:?}"
        );
    }
}

/// A SOAP 1.1 or 1.2 answer dropped in an inbox or imported reads as the JSON answer of
/// the same web service does, in UTF-8 and UTF-16LE.
#[test]
fn soap_answers_read_like_the_json_answer() {
    let from_json = people(&fixture("veris.json"));
    assert_eq!(from_json.len(), 2);
    for name in ["veris-soap11.xml", "veris-soap12.xml"] {
        for (encoding, bytes) in encodings(&fixture_text(name)) {
            for format in [Format::Auto, Format::Soap] {
                let parsed = run(&bytes, format)
                    .unwrap_or_else(|e| panic!("{name}, {encoding}, {format:?}: {e}"));
                assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
                let got = persons(&parsed);
                assert_eq!(got, from_json, "{name}, {encoding}, {format:?}");
            }
        }
    }
}

#[test]
fn a_soap_fault_or_a_doctype_refuses_the_file() {
    let fault = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
<s:Fault><faultcode>s:Server</faultcode><faultstring>directory offline</faultstring></s:Fault>\
</s:Body></s:Envelope>";
    let e = rejection(fault.as_bytes());
    assert!(
        e.contains("not a SOAP answer") && e.contains("directory offline"),
        "{e}"
    );
    let doctype = "<!DOCTYPE x [<!ENTITY a \"b\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"/>";
    assert!(rejection(doctype.as_bytes()).contains("DOCTYPE"));
}

/// A tenant's value rules: a value rewritten before it is read (matched whatever its
/// case), per column header or per field, and a default for a field a row leaves empty.
#[test]
fn value_rules_rewrite_values_and_fill_defaults() {
    use roster_shared::model::mapping::ValueRules;
    let rules: ValueRules = serde_json::from_value(serde_json::json!({
        "values": {
            "Status": {"Left": "inactive", "Sabbatical": "active"},
            "organization": {"Widget Inc.": "Widget USA"}
        },
        "defaults": {"locale": "en-US", "organization": "Widget Global"}
    }))
    .unwrap();
    let file = "Email,Status,Company\n\
a@x.com,left,Widget Inc.\n\
b@x.com, SABBATICAL ,\n\
c@x.com,gone,Other\n";
    let options = ParseOptions {
        value_rules: rules,
        ..options()
    };
    let parsed = parse(
        Box::new(Cursor::new(file.as_bytes().to_vec())),
        &options,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(parsed.rejected, 1, "an unmapped bad status still fails");
    assert!(parsed.errors[0].message.contains("\"gone\""));
    let people: Vec<Person> = entries(&parsed)
        .iter()
        .filter(|e| !e.protected)
        .map(|e| e.person().unwrap())
        .collect();
    assert!(!people[0].active, "Left: inactive");
    assert_eq!(
        people[0].organization.as_deref(),
        Some("Widget USA"),
        "by field name, through the Company alias"
    );
    assert!(people[1].active, "Sabbatical: active");
    assert_eq!(
        people[1].organization.as_deref(),
        Some("Widget Global"),
        "an empty cell takes the default"
    );
    assert_eq!(people[1].locale.as_deref(), Some("en-US"));
    assert!(
        parsed.covered.fields.iter().any(|f| f == "locale"),
        "a default feeds its field: {:?}",
        parsed.covered
    );
}

/// The references between rows, read in memory and sorted through scratch files alike:
/// a second row with another row's employee id is rejected (its email protected); a
/// manager cycle rejects its rows, each error naming the people and lines of the cycle;
/// a manager not in the file is left for the directory to resolve; a self-manager is a
/// warning.
#[test]
fn employee_ids_and_managers_are_checked_across_rows() {
    let file = b"Email,Employee ID,Manager\n\
a@x.com,1,\n\
b@x.com,2,a@x.com\n\
c@x.com,1,a@x.com\n\
d@x.com,4,e@x.com\n\
e@x.com,5,f@x.com\n\
f@x.com,6,d@x.com\n\
g@x.com,7,zed@x.com\n\
h@x.com,8,h@x.com\n";
    for sort_memory in [roster_parser::DEFAULT_SORT_MEMORY, 64] {
        let options = ParseOptions {
            sort_memory,
            ..options()
        };
        let mut parsed =
            parse(Box::new(Cursor::new(file.to_vec())), &options, &NoProgress).unwrap();
        assert_eq!(parsed.rejected, 4, "{:?}", parsed.errors);
        assert_eq!(parsed.accepted, 4, "a, b, g, h");
        let errors: Vec<(Option<u64>, Severity, &str)> = parsed
            .errors
            .iter()
            .map(|e| (e.line, e.severity, e.message.as_str()))
            .collect();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert_eq!((errors[0].0, errors[0].1), (Some(4), Severity::Error));
        assert!(errors[0].2.contains("duplicate employee id 1") && errors[0].2.contains("line 2"));
        for e in &errors[1..4] {
            assert_eq!(e.1, Severity::Error);
            assert!(
                e.2.starts_with(roster_parser::links::MANAGER_CYCLE)
                    && e.2.contains("d@x.com (line 5)")
                    && e.2.contains("e@x.com (line 6)")
                    && e.2.contains("f@x.com (line 7)"),
                "{e:?}"
            );
        }
        assert_eq!(
            errors[1..4].iter().map(|e| e.0).collect::<Vec<_>>(),
            [Some(5), Some(6), Some(7)]
        );
        assert_eq!((errors[4].0, errors[4].1), (Some(9), Severity::Warning));
        let protected: Vec<String> = entries(&parsed)
            .into_iter()
            .filter(|e| e.protected)
            .map(|e| e.email)
            .collect();
        assert_eq!(protected, ["c@x.com", "d@x.com", "e@x.com", "f@x.com"]);
        assert_eq!(parsed.unknown_managers.len(), 1);
        assert_eq!(parsed.unknown_managers[0].manager, "zed@x.com");
        assert_eq!(parsed.unknown_managers[0].line, 8);
        parsed.warn_unknown_managers(|m| m == "nobody");
        let last = parsed.errors.iter().find(|e| e.line == Some(8)).unwrap();
        assert_eq!(last.severity, Severity::Warning);
        assert!(last.message.contains("zed@x.com"));
    }
}
