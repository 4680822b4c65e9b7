//! People Contact Details files (the first seed's second file): `Person` (the person's
//! email), `Contact Protocol`, `Contact Label`, `Contact URI`, `Address Label`,
//! `Address Address`, `Address City`, `Address State`, `Address Zip`, `Address
//! Country`, `Integration` (`true`/`1` or `false`/`0`, empty meaning false) and an
//! optional `ID` (the detail it updates). CSV or TSV, in any encoding the people files
//! may have. Rows of one person need not be adjacent: the differ groups them.
//!
//! A row fails alone, with its line and column, when its person is not an email, its
//! `Integration` is not a yes or no, or it says nothing (no protocol, label, URI nor
//! address).

use roster_shared::model::envelope::RowError;
use roster_shared::model::mapping::normalize_header;
use roster_shared::model::related::{Address, ContactContent, ContactRow};

use crate::csv_input::{self, TableRow};
use crate::decode::Decoded;
use crate::error::RejectReason;
use crate::rules::normalize_email;

/// What a column of a contact-details file feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Person,
    Protocol,
    Label,
    Uri,
    AddressLabel,
    Address,
    City,
    State,
    Zip,
    Country,
    Integration,
    Id,
    Ignored,
}

/// The column a header names (normalised with [`normalize_header`]).
fn column_of(header: &str) -> Column {
    match normalize_header(header).as_str() {
        "person" | "personemail" => Column::Person,
        "contactprotocol" | "protocol" => Column::Protocol,
        "contactlabel" => Column::Label,
        "contacturi" | "uri" => Column::Uri,
        "addresslabel" => Column::AddressLabel,
        "addressaddress" | "address" | "street" => Column::Address,
        "addresscity" | "city" => Column::City,
        "addressstate" | "state" => Column::State,
        "addresszip" | "zip" | "postalcode" | "zipcode" => Column::Zip,
        "addresscountry" | "country" => Column::Country,
        "integration" => Column::Integration,
        "id" => Column::Id,
        _ => Column::Ignored,
    }
}

/// Whether a header row is a contact-details file's: a `Person` column and at least one
/// contact or address column.
pub fn is_contacts_header(names: &[&str]) -> bool {
    let columns: Vec<Column> = names.iter().map(|n| column_of(n)).collect();
    columns.contains(&Column::Person)
        && columns.iter().any(|c| {
            matches!(
                c,
                Column::Protocol | Column::Uri | Column::Address | Column::AddressLabel
            )
        })
}

/// What reading a contact-details file found.
#[derive(Debug, Default)]
pub struct ContactsRead {
    /// The rows that read, in file order.
    pub rows: Vec<ContactRow>,
    /// The rows that failed alone.
    pub errors: Vec<RowError>,
    /// Data rows read (blank ones not counted).
    pub rows_read: u64,
}

/// Reads a whole contact-details file. `Err` refuses it (no `Person` column, or what
/// refuses any delimited file).
pub fn read(
    decoded: Decoded,
    delimiter: u8,
    limits: &crate::ParseLimits,
) -> Result<ContactsRead, RejectReason> {
    let max_rows = limits.max_rows;
    let mut out = ContactsRead::default();
    let mut too_many = false;
    csv_input::table(
        decoded,
        delimiter,
        limits,
        |header| {
            let columns: Vec<Column> = header.iter().map(|h| column_of(h)).collect();
            let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
            if !columns.contains(&Column::Person) {
                return Err(RejectReason::MissingColumn {
                    column: "Person",
                    expected: "Person, Person Email",
                    found: header.to_vec(),
                });
            }
            Ok((columns, names))
        },
        |(columns, names), row| {
            out.rows_read += 1;
            if out.rows_read > max_rows {
                too_many = true;
                return;
            }
            match row {
                TableRow::Failed(error) => out.errors.push(error),
                TableRow::Values { line, values } => {
                    match contact_row(columns, names, line, values) {
                        Ok(row) => out.rows.push(row),
                        Err(error) => out.errors.push(error),
                    }
                }
            }
        },
    )?;
    if too_many {
        return Err(RejectReason::TooManyRows { limit: max_rows });
    }
    Ok(out)
}

/// Whether a cell says yes (`true`, `1`, `yes`), no (`false`, `0`, `no`, empty), or
/// neither.
fn yes_no(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

/// One row as a [`ContactRow`], or its error.
fn contact_row(
    columns: &[Column],
    names: &[String],
    line: u64,
    values: &[&str],
) -> Result<ContactRow, RowError> {
    let mut person = None;
    let mut content = ContactContent::default();
    let mut address = Address::default();
    let mut integration = false;
    let mut id = None;
    for ((column, name), value) in columns.iter().zip(names).zip(values) {
        let text = || {
            let v = value.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        match column {
            Column::Person => {
                person =
                    Some(normalize_email(value).map_err(|e| {
                        RowError::new(Some(line), Some(name.clone()), e.to_string())
                    })?);
            }
            Column::Protocol => content.protocol = text(),
            Column::Label => content.label = text(),
            Column::Uri => content.uri = text(),
            Column::AddressLabel => address.label = text(),
            Column::Address => address.address = text(),
            Column::City => address.city = text(),
            Column::State => address.state = text(),
            Column::Zip => address.zip = text(),
            Column::Country => address.country = text(),
            Column::Integration => {
                integration = yes_no(value).ok_or_else(|| {
                    RowError::new(
                        Some(line),
                        Some(name.clone()),
                        format!("{:?} is neither true/1 nor false/0", value.trim()),
                    )
                })?;
            }
            Column::Id => id = text(),
            Column::Ignored => {}
        }
    }
    if !address.is_empty() {
        content.address = Some(address);
    }
    let person = person.expect("the header has a Person column");
    if content.is_empty() {
        return Err(RowError::new(
            Some(line),
            None,
            format!(
                "no contact detail for {person}: the row has no protocol, label, URI nor address"
            ),
        ));
    }
    Ok(ContactRow {
        line,
        id,
        person,
        content,
        integration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> ContactsRead {
        let decoded = crate::decode::decode(
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            None,
        )
        .unwrap();
        let delimiter = csv_input::sniff_delimiter(&decoded.head);
        read(decoded, delimiter, &crate::ParseLimits::default()).unwrap()
    }

    #[test]
    fn the_seed_rows_read() {
        let read = read_text(
            "Person\tContact Protocol\tContact Label\tContact URI\tAddress Label\tAddress Address\tAddress City\tAddress State\tAddress Zip\tAddress Country\tIntegration\r\n\
             frank.williams@widget.com\ttelephone\tmobile\t+1 (713) 441 8299\t\t\t\t\t\t\t1\r\n\
             pierre.lefevre@widget.com\ttelephone\twork\t+33 (1) 4703 5144\t\t\t\t\t\t\t1\r\n\
             pierre.lefevre@widget.com\t\t\t\thome\t14 Rue de Seine\tParis\t\t75006\tFR\t1\r\n",
        );
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        assert_eq!(read.rows.len(), 3);
        assert_eq!(
            read.rows[0].content.uri.as_deref(),
            Some("+1 (713) 441 8299")
        );
        let address = read.rows[2].content.address.as_ref().unwrap();
        assert_eq!(address.city.as_deref(), Some("Paris"));
        assert_eq!(address.zip.as_deref(), Some("75006"));
        assert!(read.rows[2].integration);
        assert_eq!(read.rows[2].line, 4);
    }

    #[test]
    fn a_bad_row_fails_alone_with_its_line_and_column() {
        let read = read_text(
            "Person,Contact Protocol,Contact URI,Integration\n\
             nobody,telephone,123,1\n\
             a@x.com,telephone,456,maybe\n\
             b@x.com,,,1\n\
             c@x.com,email,c@home.org,0\n",
        );
        assert_eq!(read.rows.len(), 1);
        assert!(!read.rows[0].integration);
        let places: Vec<_> = read
            .errors
            .iter()
            .map(|e| (e.line, e.column.clone()))
            .collect();
        assert_eq!(
            places,
            [
                (Some(2), Some("Person".to_owned())),
                (Some(3), Some("Integration".to_owned())),
                (Some(4), None)
            ]
        );
    }

    #[test]
    fn a_file_without_a_person_column_is_refused() {
        let decoded = crate::decode::decode(
            Box::new(std::io::Cursor::new(b"Contact URI\n1\n".to_vec())),
            None,
        )
        .unwrap();
        let err = read(decoded, b',', &crate::ParseLimits::default()).unwrap_err();
        assert!(err.to_string().contains("no Person column"), "{err}");
    }

    fn refusal(text: &[u8]) -> String {
        let decoded =
            match crate::decode::decode(Box::new(std::io::Cursor::new(text.to_vec())), None) {
                Ok(d) => d,
                Err(e) => return e.to_string(),
            };
        let limits = crate::ParseLimits {
            max_cell_bytes: 1024,
            ..crate::ParseLimits::default()
        };
        match read(decoded, b',', &limits) {
            Ok(read) => format!("{:?}", read.errors),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn what_breaks_people_files_breaks_contact_files_alike() {
        let head = "Person,Contact Protocol,Contact URI,Integration\r\n";
        let cut = format!("{head}a@x.com,telephone,1,1\r\nb@x.com,tele");
        assert!(refusal(cut.as_bytes()).contains("line 3: the file ends in the middle"));
        let open = format!("{head}a@x.com,\"telephone,1,1\r\nb@x.com,telephone,2,1\r\n");
        assert!(
            refusal(open.as_bytes()).contains("quoted value"),
            "{}",
            refusal(open.as_bytes())
        );
        // In the first bytes, a NUL refuses the file (not text); further on, its row.
        let nul = format!("{head}a@x.com,telephone,1\u{0}2,1\r\n");
        assert!(refusal(nul.as_bytes()).contains("NUL"));
        let mut far = head.to_owned();
        for k in 0..400 {
            far.push_str(&format!("p{k}@x.com,telephone,{k},1\r\n"));
        }
        far.push_str("a@x.com,telephone,1\u{0}2,1\r\n");
        let got = refusal(far.as_bytes());
        assert!(
            got.contains("control character") && got.contains("line: Some(402)"),
            "{got}"
        );
        let huge = format!("{head}a@x.com,telephone,{},1\r\n", "9".repeat(2000));
        assert!(refusal(huge.as_bytes()).contains("ROSTER_MAX_CELL_BYTES"));
        let latin = b"Person,Contact URI\na@x.com,caf\xE9\n";
        assert!(
            refusal(latin).contains("line 2, column 2"),
            "{}",
            refusal(latin)
        );
    }

    #[test]
    fn contact_headers_are_told_from_people_headers() {
        assert!(is_contacts_header(&[
            "Person",
            "Contact Protocol",
            "Contact URI"
        ]));
        assert!(!is_contacts_header(&["Primary Email", "Name", "Site"]));
        assert!(!is_contacts_header(&["Person", "Name"]));
    }
}
