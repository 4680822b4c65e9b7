//! Active Directory exports: distinguished names, and the managers they name.
//!
//! `Get-ADUser | Export-Csv` and `csvde` give a person's manager as a distinguished name
//! (`CN=Kumar\, Amit,OU=Users,DC=veris,DC=in`), not an email. The file itself says whose
//! name that is (each row's `DistinguishedName`, or `csvde`'s `DN`), so before the rows
//! are read a first pass collects every row's name and email ([`managers`]), and the
//! rows' managers are then looked up by name ([`DnMap::email`]). Names are compared the
//! way Active Directory compares them: attribute types and values case-insensitively,
//! escapes (`\,`, `\2C`) and spaces around separators not counting.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::decode::Decoded;
use crate::error::RejectReason;
use crate::headers::{HeaderMap, Role};
use crate::rules::normalize_email;

/// Whether a record's first field is PowerShell's `#TYPE` line (`Export-Csv` writes
/// `#TYPE Microsoft.ActiveDirectory.Management.ADUser` above the header unless told
/// `-NoTypeInformation`).
pub fn is_type_line(first_field: &[u8]) -> bool {
    first_field.len() >= 5 && first_field[..5].eq_ignore_ascii_case(b"#TYPE")
}

/// Whether `value` is written as a distinguished name (`CN=...,OU=...`) rather than an
/// email: it starts with an attribute type and `=`, and has a `,` or no `@`.
pub fn looks_like_dn(value: &str) -> bool {
    let value = value.trim();
    let Some((kind, _)) = value.split_once('=') else {
        return false;
    };
    let kind = kind.trim_end();
    let is_type = kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    is_type && (value.contains(',') || !value.contains('@'))
}

/// A distinguished name reduced to what identifies it: each relative name as
/// `type=value`, both lower case, escapes resolved, surrounding spaces trimmed, joined
/// by NUL. `None` when `dn` is not one (no `=` in a part, an escape cut short).
pub fn normalize_dn(dn: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut chars = dn.trim().chars().peekable();
    while chars.peek().is_some() {
        let mut kind = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            kind.push(c);
        }
        let kind = kind.trim().to_lowercase();
        if kind.is_empty() {
            return None;
        }
        // The value: up to an unescaped `,` or `;` outside quotes.
        let mut value: Vec<u8> = Vec::new();
        let mut quoted = false;
        let mut trailing_escaped = 0usize;
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                ',' | ';' if !quoted => break,
                '\\' => {
                    let next = chars.next()?;
                    if next.is_ascii_hexdigit() {
                        let low = chars.next()?;
                        let byte = u8::from_str_radix(&format!("{next}{low}"), 16).ok()?;
                        value.push(byte);
                    } else {
                        let mut buf = [0u8; 4];
                        value.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
                    }
                    trailing_escaped = value.len();
                    continue;
                }
                c => {
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(value).ok()?;
        // Unescaped spaces around the value do not count; escaped ones do.
        let start = value.len() - value.trim_start().len();
        let end = value
            .trim_end()
            .len()
            .max(trailing_escaped.min(value.len()));
        let value = value.get(start.min(end)..end)?.to_lowercase();
        parts.push(format!("{kind}={value}"));
    }
    (!parts.is_empty()).then(|| parts.join("\0"))
}

/// The people of one export by distinguished name: whose email a manager's name means.
#[derive(Debug, Clone, Default)]
pub struct DnMap {
    emails: HashMap<String, String>,
}

impl DnMap {
    /// The email of the person named `dn`, if the file has them with an email.
    pub fn email(&self, dn: &str) -> Option<&str> {
        self.emails.get(&normalize_dn(dn)?).map(String::as_str)
    }

    /// People known by name.
    pub fn len(&self) -> usize {
        self.emails.len()
    }

    /// Whether nobody is known.
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty()
    }

    fn insert(&mut self, dn: &str, email: String) {
        if let Some(key) = normalize_dn(dn) {
            self.emails.entry(key).or_insert(email);
        }
    }
}

/// The header row of a delimited file from its first bytes (`head`), skipping a
/// `#TYPE` line. `None` when `head` does not hold a whole header line.
fn header_of(head: &[u8], delimiter: u8) -> Option<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(head);
    let mut record = csv::ByteRecord::new();
    loop {
        if !reader.read_byte_record(&mut record).ok()? {
            return None;
        }
        // The record must end inside `head`, or it may be cut short.
        if reader.position().byte() as usize >= head.len() {
            return None;
        }
        if !record.get(0).is_some_and(is_type_line) {
            return Some(
                record
                    .iter()
                    .map(|h| String::from_utf8_lossy(h).into_owned())
                    .collect(),
            );
        }
    }
}

/// For a delimited file whose header has a manager column and a distinguished-name
/// column: the text is copied to an unnamed scratch file in `spill_dir` (the system's
/// temporary folder when `None`), every row's name and email are collected from it, and
/// the copy is handed back to be read as the file. Any other file is handed back as it
/// came, with no names. Rows the first pass cannot read are left to the real reading,
/// which reports them.
pub fn managers(
    decoded: Decoded,
    delimiter: u8,
    headers: &HeaderMap,
    spill_dir: Option<&Path>,
) -> Result<(Decoded, Option<DnMap>), RejectReason> {
    let Some(names) = header_of(&decoded.head, delimiter) else {
        return Ok((decoded, None));
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let Ok(roles) = headers.roles(&refs) else {
        return Ok((decoded, None));
    };
    let dn_at = roles.iter().position(|r| *r == Role::Dn);
    let emails: Vec<usize> = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == Role::Field(roster_shared::model::person::Field::Email))
        .map(|(i, _)| i)
        .collect();
    let (Some(dn_at), true) = (dn_at, roles.contains(&Role::Manager)) else {
        return Ok((decoded, None));
    };
    let Decoded {
        mut reader,
        validate,
        encoding,
        bom,
        head,
    } = decoded;
    let scratch = RejectReason::Scratch;
    let mut copy = match spill_dir {
        Some(dir) => tempfile::tempfile_in(dir),
        None => tempfile::tempfile(),
    }
    .map_err(scratch)?;
    {
        // The file's fault when reading fails, our disk's when writing does.
        let mut buf = vec![0u8; 1 << 16];
        let mut out = io::BufWriter::with_capacity(1 << 16, &copy);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RejectReason::Io(e)),
            };
            out.write_all(&buf[..n]).map_err(scratch)?;
        }
        out.flush().map_err(scratch)?;
    }
    copy.seek(SeekFrom::Start(0)).map_err(scratch)?;
    let mut map = DnMap::default();
    {
        let mut rows = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(io::BufReader::new(&copy));
        let mut record = csv::ByteRecord::new();
        let mut header_seen = false;
        while let Ok(true) = rows.read_byte_record(&mut record) {
            if !header_seen {
                header_seen = !record.get(0).is_some_and(is_type_line);
                continue;
            }
            let text = |i: usize| record.get(i).and_then(|b| std::str::from_utf8(b).ok());
            let email = emails
                .iter()
                .filter_map(|&i| text(i))
                .find(|e| !e.trim().is_empty())
                .and_then(|e| normalize_email(e).ok());
            if let (Some(dn), Some(email)) = (text(dn_at), email) {
                map.insert(dn, email);
            }
        }
    }
    copy.seek(SeekFrom::Start(0)).map_err(scratch)?;
    let decoded = Decoded {
        reader: Box::new(io::BufReader::with_capacity(1 << 16, copy)),
        validate,
        encoding,
        bom,
        head,
    };
    Ok((decoded, Some(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_active_directory_compares_them() {
        let a = normalize_dn(r"CN=Kumar\, Amit,OU=Users,DC=veris,DC=in").unwrap();
        for same in [
            r"cn=kumar\, amit, ou=users, dc=veris, dc=in",
            r"CN=Kumar\2C Amit,OU=Users,DC=Veris,DC=IN",
            r#"CN="Kumar, Amit",OU=Users,DC=veris,DC=in"#,
            r" CN = Kumar\, Amit ;OU=Users,DC=veris,DC=in ",
        ] {
            assert_eq!(normalize_dn(same).as_deref(), Some(a.as_str()), "{same}");
        }
        for other in [
            r"CN=Kumar,OU=Users,DC=veris,DC=in",
            r"CN=Kumar\, Amit,OU=Staff,DC=veris,DC=in",
            r"CN=Kumar\, Amit,OU=Users,DC=veris",
        ] {
            assert_ne!(normalize_dn(other).as_deref(), Some(a.as_str()), "{other}");
        }
        assert_eq!(
            normalize_dn(r"CN=M\C3\BCller,DC=x").unwrap(),
            "cn=müller\0dc=x",
            "hex escapes are UTF-8 bytes"
        );
        assert_eq!(
            normalize_dn(r"CN=Trailing\ ,DC=x").unwrap(),
            "cn=trailing \0dc=x"
        );
        assert_eq!(normalize_dn(r"CN=cut\"), None);
        assert_eq!(normalize_dn("=x"), None);
        assert_eq!(normalize_dn(""), None);
    }

    #[test]
    fn managers_are_told_from_emails() {
        assert!(looks_like_dn(r"CN=Kumar\, Amit,OU=Users,DC=veris,DC=in"));
        assert!(looks_like_dn("cn=admin"));
        assert!(!looks_like_dn("ak@veris.in"));
        assert!(!looks_like_dn("Amit Kumar"));
        assert!(!looks_like_dn("a=b@veris.in"));
        assert!(!looks_like_dn("=x,y"));
    }

    #[test]
    fn the_type_line_is_known() {
        assert!(is_type_line(
            b"#TYPE Microsoft.ActiveDirectory.Management.ADUser"
        ));
        assert!(is_type_line(b"#type Selected.Microsoft"));
        assert!(!is_type_line(b"#TYP"));
        assert!(!is_type_line(b"Email"));
    }
}
