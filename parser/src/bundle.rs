//! Three-file bundles (the second seed's): a zip archive (a delivered folder is packed
//! into one) holding `users.csv`, `groups.csv` and `groups-mapping.csv` (names
//! configurable, found in any folder of the archive, matched without regard to case).
//!
//! - users: people keyed by email (first name, last name, job title, language, ...),
//!   read exactly as a people file; the whole of them (a missing line deactivates);
//! - groups: `id` (stable) and `name`; the whole of them (a missing group is removed, a
//!   changed name is a rename);
//! - mappings: a group and either a user (with a manager flag) or a subgroup; the whole
//!   of them. A mapping to a user or group the bundle does not have fails alone; a
//!   subgroup cycle refuses the bundle, naming the groups.
//!
//! Only the users file is required: without a groups file, groups and memberships stay
//! as they are; without a mappings file, memberships do (those of removed groups aside).
//!
//! Every file must be UTF-8 with a byte-order mark unless the check is waived
//! (`--ignore-encoding`, a source's `ignore_encoding: true`); a file in another encoding
//! refuses the bundle, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use roster_shared::model::envelope::{Format, RowError};
use roster_shared::model::mapping::normalize_header;
pub use roster_shared::model::related::BundleFiles;
use roster_shared::model::related::{Group, MemberKind, Membership, RelatedSnapshot};
use roster_shared::stage::Progress;

use crate::ParseOptions;
use crate::collect::ParsedFile;
use crate::csv_input::{self, TableRow};
use crate::decode;
use crate::error::{RejectReason, Rejection};
use crate::rules::normalize_email;

/// Bytes one file of a bundle may unpack to: a small archive that unpacks to more is
/// refused rather than filling memory.
pub const MAX_UNPACKED_BYTES: u64 = 512 << 20;

/// Whether `head` (a file's first bytes) is a zip archive.
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

fn bundle_error(message: String) -> RejectReason {
    RejectReason::Bundle(message)
}

/// Reads a whole bundle: its users as the people of the run, its groups and mappings
/// as the run's related records.
pub fn parse(
    mut input: Box<dyn Read + Send>,
    options: &ParseOptions,
    progress: &dyn Progress,
) -> Result<ParsedFile, Rejection> {
    let reject = |reason: RejectReason| Rejection {
        file: options.file_name.clone(),
        reason,
    };
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| reject(RejectReason::Io(e)))?;
    // An archive not declared a bundle, unreadable or without any CSV file, is another
    // kind of archive (a spreadsheet saved as xlsx, say): refused as the file it is.
    let not_text = |head: &[u8]| match decode::decode(Box::new(Cursor::new(head.to_vec())), None) {
        Err(reason) if options.format != Format::Bundle => Some(reject(reason)),
        _ => None,
    };
    let head = bytes[..bytes.len().min(8192)].to_vec();
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(e) => {
            if let Some(refusal) = not_text(&head) {
                return Err(refusal);
            }
            return Err(reject(bundle_error(format!(
                "not a zip archive Roster can read: {e}"
            ))));
        }
    };
    let names = &options.bundle;
    let Some(users) =
        unpack(&mut archive, &names.users, options.ignore_encoding).map_err(reject)?
    else {
        // Without a CSV file at all it is no bundle, but some other archive.
        let has_csv = archive
            .file_names()
            .filter_map(Result::ok)
            .any(|n| n.to_lowercase().ends_with(".csv"));
        if let Some(refusal) = not_text(&head).filter(|_| !has_csv) {
            return Err(refusal);
        }
        return Err(reject(bundle_error(format!(
            "no {} in the bundle (it holds: {})",
            names.users,
            archive
                .file_names()
                .filter_map(Result::ok)
                .map(std::borrow::Cow::into_owned)
                .collect::<Vec<_>>()
                .join(", ")
        ))));
    };
    let groups_file =
        unpack(&mut archive, &names.groups, options.ignore_encoding).map_err(reject)?;
    let mappings_file =
        unpack(&mut archive, &names.mappings, options.ignore_encoding).map_err(reject)?;
    if mappings_file.is_some() && groups_file.is_none() {
        return Err(reject(bundle_error(format!(
            "{} maps to groups, but the bundle has no {}",
            names.mappings, names.groups
        ))));
    }

    let inner = ParseOptions {
        file_name: names.users.clone(),
        format: Format::Csv,
        ..options.clone()
    };
    let mut parsed = crate::parse(Box::new(Cursor::new(users)), &inner, progress).map_err(|r| {
        reject(RejectReason::InBundle {
            file: r.file,
            reason: Box::new(r.reason),
        })
    })?;
    // A reject file is re-read from the raw file, which is the archive: JSON lines instead.
    parsed.layout = None;
    for error in &mut parsed.errors {
        error.message = format!("{}: {}", names.users, error.message);
    }
    let users: BTreeSet<String> = parsed
        .keys()
        .map_err(|e| reject(RejectReason::Io(e)))?
        .into_iter()
        .collect();

    let mut related = RelatedSnapshot::default();
    let mut errors = Vec::new();
    let mut rows = 0u64;
    let in_file = |file: &str| {
        let file = file.to_owned();
        move |reason: RejectReason| {
            reject(RejectReason::InBundle {
                file: file.clone(),
                reason: Box::new(reason),
            })
        }
    };
    if let Some(bytes) = groups_file {
        let groups = read_groups(bytes, &names.groups, options, &mut errors, &mut rows)
            .map_err(in_file(&names.groups))?;
        let memberships = match mappings_file {
            Some(bytes) => {
                let read = read_mappings(
                    bytes,
                    &names.mappings,
                    options,
                    &groups,
                    &users,
                    &mut errors,
                    &mut rows,
                )
                .map_err(in_file(&names.mappings))?;
                if let Some(cycle) = find_cycle(&read) {
                    let names_of: Vec<String> = cycle
                        .iter()
                        .map(|id| match groups.get(id) {
                            Some(g) => format!("{id} ({})", g.name),
                            None => id.clone(),
                        })
                        .collect();
                    return Err(reject(bundle_error(format!(
                        "{}: subgroups form a cycle: {}",
                        names.mappings,
                        names_of.join(" → ")
                    ))));
                }
                Some(read)
            }
            // No mappings file: the memberships stay as they are (but those of groups
            // the bundle removes go with them).
            None => None,
        };
        related.groups = Some(groups.into_values().collect());
        related.memberships = memberships;
    }
    parsed.rows_read += rows;
    parsed.rejected += errors.len() as u64;
    parsed.errors.extend(errors);
    parsed.related = Some(related);
    Ok(parsed)
}

/// The text of the bundle's file named `name` (in any folder, any case), checked for
/// its encoding; `None` when the bundle has no such file.
fn unpack(
    archive: &mut zip::ZipArchive<Cursor<Vec<u8>>>,
    name: &str,
    ignore_encoding: bool,
) -> Result<Option<Vec<u8>>, RejectReason> {
    let wanted = name.to_lowercase();
    let found: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(std::borrow::Cow::into_owned)
        .filter(|path| {
            let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
            !path.ends_with('/') && base.to_lowercase() == wanted
        })
        .collect();
    let path = match found.as_slice() {
        [] => return Ok(None),
        [one] => one,
        many => {
            return Err(bundle_error(format!(
                "the bundle holds {} more than once: {}",
                name,
                many.join(", ")
            )));
        }
    };
    let file = archive
        .by_name(path)
        .map_err(|e| bundle_error(format!("{path}: cannot unpack: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_UNPACKED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bundle_error(format!("{path}: cannot unpack: {e}")))?;
    if bytes.len() as u64 > MAX_UNPACKED_BYTES {
        return Err(bundle_error(format!(
            "{path}: unpacks to more than {MAX_UNPACKED_BYTES} bytes"
        )));
    }
    if !ignore_encoding {
        check_encoding(path, &bytes)?;
    }
    Ok(Some(bytes))
}

/// Refuses a file that is not UTF-8 with a byte-order mark, naming it and what it is.
fn check_encoding(path: &str, bytes: &[u8]) -> Result<(), RejectReason> {
    let found = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        match std::str::from_utf8(&bytes[3..]) {
            Ok(_) => return Ok(()),
            Err(e) => format!(
                "it starts with a UTF-8 byte-order mark but byte {} is not UTF-8",
                e.valid_up_to() + 4
            ),
        }
    } else if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        "it is UTF-16".to_owned()
    } else if std::str::from_utf8(bytes).is_ok() {
        "it is UTF-8 without a byte-order mark".to_owned()
    } else {
        "it is not UTF-8 (perhaps Windows-1252 or Latin-1)".to_owned()
    };
    Err(bundle_error(format!(
        "{path}: a bundle's files must be UTF-8 with a byte-order mark, and {found}; save \
         it as \"UTF-8 with BOM\", or waive the check with --ignore-encoding"
    )))
}

/// What a column of a groups or mappings file feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Group,
    Name,
    User,
    Manager,
    Subgroup,
    Ignored,
}

fn group_column(header: &str) -> Column {
    match normalize_header(header).as_str() {
        "id" | "groupid" => Column::Group,
        "name" | "groupname" => Column::Name,
        _ => Column::Ignored,
    }
}

fn mapping_column(header: &str) -> Column {
    match normalize_header(header).as_str() {
        "groupid" | "group" | "parentgroupid" | "parentgroup" => Column::Group,
        "useremail" | "email" | "user" | "member" | "memberemail" => Column::User,
        "ismanager" | "manager" | "groupmanager" => Column::Manager,
        "subgroupid" | "subgroup" | "childgroupid" | "childgroup" => Column::Subgroup,
        _ => Column::Ignored,
    }
}

/// Reads delimited `bytes` (any BOM stripped) with `columns_of`, requiring `required`
/// columns; hands `row` each row's line and values by column.
fn read_table(
    bytes: Vec<u8>,
    options: &ParseOptions,
    columns_of: fn(&str) -> Column,
    required: &[(Column, &'static str, &'static str)],
    errors: &mut Vec<RowError>,
    rows: &mut u64,
    mut row: impl FnMut(u64, &Cells<'_>) -> Result<(), RowError>,
) -> Result<(), RejectReason> {
    let decoded = decode::decode(Box::new(Cursor::new(bytes)), None)?;
    let delimiter = csv_input::sniff_delimiter(&decoded.head);
    let mut too_many = false;
    csv_input::table(
        decoded,
        delimiter,
        &options.limits,
        |header| {
            let columns: Vec<Column> = header.iter().map(|h| columns_of(h)).collect();
            let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
            for (column, what, expected) in required {
                if !columns.contains(column) {
                    return Err(RejectReason::MissingColumn {
                        column: what,
                        expected,
                        found: header.to_vec(),
                    });
                }
            }
            Ok((columns, names))
        },
        |(columns, names), table_row| {
            *rows += 1;
            if *rows > options.limits.max_rows {
                too_many = true;
                return;
            }
            match table_row {
                TableRow::Failed(error) => errors.push(error),
                TableRow::Values { line, values } => {
                    let cells = Cells {
                        columns,
                        names,
                        values,
                    };
                    if let Err(error) = row(line, &cells) {
                        errors.push(error);
                    }
                }
            }
        },
    )?;
    if too_many {
        return Err(RejectReason::TooManyRows {
            limit: options.limits.max_rows,
        });
    }
    Ok(())
}

/// One row of a groups or mappings file, by column.
struct Cells<'a> {
    columns: &'a [Column],
    names: &'a [String],
    values: &'a [&'a str],
}

impl<'a> Cells<'a> {
    /// The trimmed value of the first column feeding `wanted` (empty when there is
    /// none) and that column's header.
    fn get(&self, wanted: Column) -> (&'a str, String) {
        self.columns
            .iter()
            .position(|c| *c == wanted)
            .map_or(("", String::new()), |i| {
                (self.values[i].trim(), self.names[i].clone())
            })
    }
}

/// The groups file: every group by id. A row without an id or a name, or repeating an
/// id, fails alone.
fn read_groups(
    bytes: Vec<u8>,
    file: &str,
    options: &ParseOptions,
    errors: &mut Vec<RowError>,
    rows: &mut u64,
) -> Result<BTreeMap<String, Group>, RejectReason> {
    let mut groups: BTreeMap<String, (u64, Group)> = BTreeMap::new();
    read_table(
        bytes,
        options,
        group_column,
        &[
            (Column::Group, "group id", "id, groupId"),
            (Column::Name, "group name", "name, groupName"),
        ],
        errors,
        rows,
        |line, cells| {
            let fail = |(_, column): (&str, String), message: String| {
                RowError::new(Some(line), Some(column), format!("{file}: {message}"))
            };
            let (id, name) = (cells.get(Column::Group), cells.get(Column::Name));
            if id.0.is_empty() {
                return Err(fail(id, "a group without an id".into()));
            }
            if name.0.is_empty() {
                let message = format!("group {} has no name", id.0);
                return Err(fail(name, message));
            }
            if let Some((first, _)) = groups.get(id.0) {
                let message = format!("group id {} is already on line {first}", id.0);
                return Err(fail(id, message));
            }
            groups.insert(
                id.0.to_owned(),
                (
                    line,
                    Group {
                        id: id.0.to_owned(),
                        name: name.0.to_owned(),
                    },
                ),
            );
            Ok(())
        },
    )?;
    Ok(groups.into_iter().map(|(id, (_, g))| (id, g)).collect())
}

/// The mappings file: every membership, sorted. A mapping to a user or group the
/// bundle does not have, or naming both or neither of a user and a subgroup, fails
/// alone; a user mapped twice to a group is one membership (a manager if either row
/// says so).
#[allow(clippy::too_many_arguments)]
fn read_mappings(
    bytes: Vec<u8>,
    file: &str,
    options: &ParseOptions,
    groups: &BTreeMap<String, Group>,
    users: &BTreeSet<String>,
    errors: &mut Vec<RowError>,
    rows: &mut u64,
) -> Result<Vec<Membership>, RejectReason> {
    let mut memberships: BTreeMap<(String, MemberKind, String), bool> = BTreeMap::new();
    read_table(
        bytes,
        options,
        mapping_column,
        &[(Column::Group, "group id", "groupId, group")],
        errors,
        rows,
        |line, cells| {
            let fail = |(_, column): (&str, String), message: String| {
                RowError::new(Some(line), Some(column), format!("{file}: {message}"))
            };
            let group = cells.get(Column::Group);
            let (user, subgroup) = (cells.get(Column::User), cells.get(Column::Subgroup));
            if group.0.is_empty() {
                return Err(fail(group, "a mapping without a group".into()));
            }
            if !groups.contains_key(group.0) {
                let message = format!("unknown group {}: it is not in the groups file", group.0);
                return Err(fail(group, message));
            }
            let manager = cells.get(Column::Manager);
            let is_manager = match manager.0.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" => true,
                "false" | "0" | "no" | "n" | "" => false,
                other => {
                    let message = format!("{other:?} is neither true/1 nor false/0");
                    return Err(fail(manager, message));
                }
            };
            let (kind, member) = match (user.0.is_empty(), subgroup.0.is_empty()) {
                (false, true) => {
                    let email =
                        normalize_email(user.0).map_err(|e| fail(user.clone(), e.to_string()))?;
                    if !users.contains(&email) {
                        let message = format!("unknown user {email}: it is not in the users file");
                        return Err(fail(user, message));
                    }
                    (MemberKind::Person, email)
                }
                (true, false) => {
                    if !groups.contains_key(subgroup.0) {
                        let message = format!(
                            "unknown subgroup {}: it is not in the groups file",
                            subgroup.0
                        );
                        return Err(fail(subgroup, message));
                    }
                    (MemberKind::Group, subgroup.0.to_owned())
                }
                (true, true) => {
                    return Err(fail(
                        group,
                        "the mapping names neither a user nor a subgroup".into(),
                    ));
                }
                (false, false) => {
                    return Err(fail(
                        subgroup,
                        "the mapping names both a user and a subgroup; use a row for each".into(),
                    ));
                }
            };
            let flag = memberships
                .entry((group.0.to_owned(), kind, member))
                .or_default();
            *flag |= is_manager && kind == MemberKind::Person;
            Ok(())
        },
    )?;
    Ok(memberships
        .into_iter()
        .map(|((group, kind, member), manager)| Membership {
            group,
            kind,
            member,
            manager,
        })
        .collect())
}

/// A cycle among subgroups, as the group ids along it (the first repeated at the end),
/// if there is one.
pub fn find_cycle(memberships: &[Membership]) -> Option<Vec<String>> {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in memberships.iter().filter(|m| m.kind == MemberKind::Group) {
        edges.entry(&m.group).or_default().push(&m.member);
    }
    // Depth-first with colours: 1 on the current path, 2 finished.
    let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in edges.keys() {
        if colour.contains_key(start) {
            continue;
        }
        let mut path: Vec<&str> = vec![start];
        let mut next: Vec<usize> = vec![0];
        colour.insert(start, 1);
        while let Some(&node) = path.last() {
            let i = next.last_mut().expect("as long as path");
            let children = edges.get(node).map_or(&[][..], Vec::as_slice);
            if let Some(&child) = children.get(*i) {
                *i += 1;
                match colour.get(child) {
                    Some(1) => {
                        let from = path.iter().position(|n| *n == child).expect("on the path");
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|s| (*s).to_owned()).collect();
                        cycle.push(child.to_owned());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        colour.insert(child, 1);
                        path.push(child);
                        next.push(0);
                    }
                }
            } else {
                colour.insert(node, 2);
                path.pop();
                next.pop();
            }
        }
    }
    None
}

pub use roster_shared::archive::{pack_files, pack_folder};

#[cfg(test)]
mod tests {
    use super::*;

    fn member(group: &str, sub: &str) -> Membership {
        Membership {
            group: group.into(),
            kind: MemberKind::Group,
            member: sub.into(),
            manager: false,
        }
    }

    #[test]
    fn cycles_are_found_and_named() {
        assert_eq!(find_cycle(&[member("a", "b"), member("b", "c")]), None);
        assert_eq!(
            find_cycle(&[member("a", "b"), member("b", "c"), member("c", "a")]),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            find_cycle(&[member("x", "x")]),
            Some(vec!["x".into(), "x".into()])
        );
        // A diamond is no cycle.
        assert_eq!(
            find_cycle(&[
                member("a", "b"),
                member("a", "c"),
                member("b", "d"),
                member("c", "d")
            ]),
            None
        );
    }

    /// A bundle packed from `files` (name, bytes).
    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn options() -> ParseOptions {
        ParseOptions {
            file_name: "bundle.zip".into(),
            format: Format::Auto,
            encoding: None,
            mappings: Vec::new(),
            organizations: Vec::new(),
            value_rules: Default::default(),
            limits: crate::ParseLimits::default(),
            sort_memory: crate::DEFAULT_SORT_MEMORY,
            spill_dir: None,
            ignore_encoding: false,
            bundle: BundleFiles::default(),
        }
    }

    fn read(bytes: Vec<u8>) -> Result<ParsedFile, Rejection> {
        parse(
            Box::new(Cursor::new(bytes)),
            &options(),
            &roster_shared::stage::NoProgress,
        )
    }

    #[test]
    fn files_packed_from_anywhere_read_as_a_bundle_and_repeated_keys_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("people.csv");
        let groups = dir.path().join("teams.csv");
        std::fs::write(
            &users,
            "\u{feff}email,firstName\r\na@x.com,A\r\nnot-an-email,B\r\na@x.com,C\r\n",
        )
        .unwrap();
        std::fs::write(&groups, "\u{feff}id,name\ng1,One\ng1,Again\n").unwrap();
        let zip = dir.path().join("bundle.zip");
        let files = [
            ("people.csv".to_owned(), users.clone()),
            ("teams.csv".to_owned(), groups.clone()),
        ];
        pack_files(&files, &zip).unwrap();
        let options = ParseOptions {
            format: Format::Bundle,
            bundle: BundleFiles {
                users: "people.csv".into(),
                groups: "teams.csv".into(),
                mappings: "none.csv".into(),
            },
            ..options()
        };
        let bytes = std::fs::read(&zip).unwrap();
        let parsed = parse(
            Box::new(Cursor::new(bytes)),
            &options,
            &roster_shared::stage::NoProgress,
        )
        .unwrap();
        let repeated: Vec<_> = parsed
            .errors
            .iter()
            .filter(|e| crate::is_duplicate_key(e))
            .map(|e| (e.line, e.message.split(':').next().unwrap().to_owned()))
            .collect();
        assert_eq!(
            repeated,
            [
                (Some(4), "people.csv".to_owned()),
                (Some(3), "teams.csv".to_owned())
            ],
            "{:?}",
            parsed.errors
        );
        assert_eq!(parsed.errors.len(), 3, "the bad email is an error too");
    }

    #[test]
    fn a_bundle_within_a_bundle_is_refused_not_opened() {
        let inner = zip_of(&[("users.csv", b"\xEF\xBB\xBFemail\na@x.com\n")]);
        let outer = zip_of(&[("users.csv", &inner)]);
        let err = read(outer).unwrap_err().to_string();
        assert!(err.contains("users.csv"), "{err}");
        let empty = zip_of(&[("x", b"")]);
        let err = read(zip_of(&[("users.csv", &empty)])).unwrap_err();
        assert!(err.to_string().contains("users.csv"), "{err}");
    }

    #[test]
    fn a_bundle_reads_in_any_folder_and_names_a_missing_file() {
        let users = b"\xEF\xBB\xBFemail,firstName\r\na@x.com,Ann\r\n";
        let groups = b"\xEF\xBB\xBFid,name\r\ng1,One\r\n";
        let mapping = b"\xEF\xBB\xBFgroupId,userEmail,isManager\r\ng1,A@X.com,yes\r\n";
        let parsed = read(zip_of(&[
            ("Data/Users.CSV", users),
            ("Data/groups.csv", groups),
            ("Data/groups-mapping.csv", mapping),
        ]))
        .unwrap();
        assert_eq!(parsed.accepted, 1);
        let related = parsed.related.unwrap();
        assert_eq!(related.groups.unwrap()[0].name, "One");
        let memberships = related.memberships.unwrap();
        assert_eq!(memberships[0].member, "a@x.com");
        assert!(memberships[0].manager);
        let no_mappings = read(zip_of(&[("users.csv", users), ("groups.csv", groups)])).unwrap();
        let related = no_mappings.related.unwrap();
        assert!(related.groups.is_some() && related.memberships.is_none());
        let err = read(zip_of(&[("groups.csv", groups)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no users.csv in the bundle"), "{err}");
        let err = read(zip_of(&[
            ("users.csv", users),
            ("groups-mapping.csv", mapping),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("no groups.csv"), "{err}");
    }

    #[test]
    fn hostile_entry_names_are_only_names() {
        // Nothing is ever unpacked to disk: a `../` name is matched by its last part and
        // read in memory.
        let users = b"\xEF\xBB\xBFemail\r\na@x.com\r\n";
        let groups = b"\xEF\xBB\xBFid,name\r\ng1,One\r\n";
        let parsed = read(zip_of(&[
            ("../../etc/users.csv", users),
            ("..\\groups.csv", groups),
        ]))
        .unwrap();
        assert_eq!(parsed.accepted, 1);
        assert_eq!(parsed.related.unwrap().groups.unwrap()[0].id, "g1");
        let twice = read(zip_of(&[("users.csv", users), ("x/users.csv", users)]))
            .unwrap_err()
            .to_string();
        assert!(twice.contains("more than once"), "{twice}");
    }

    #[test]
    fn a_folder_with_a_link_is_not_packed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.csv"), "\u{FEFF}email\n").unwrap();
        let elsewhere = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("groups.csv")).unwrap();
        let zip = dir.path().join("out.zip");
        let err = pack_folder(dir.path(), &zip).unwrap_err();
        assert!(err.to_string().contains("a link"), "{err}");
    }

    #[test]
    fn the_encoding_check_names_what_the_file_is() {
        assert!(check_encoding("u.csv", b"\xEF\xBB\xBFemail\n").is_ok());
        let plain = check_encoding("u.csv", b"email\n").unwrap_err().to_string();
        assert!(
            plain.contains("u.csv") && plain.contains("without a byte-order mark"),
            "{plain}"
        );
        let utf16 = check_encoding("g.csv", b"\xFF\xFEe\0")
            .unwrap_err()
            .to_string();
        assert!(utf16.contains("UTF-16"), "{utf16}");
        let latin = check_encoding("g.csv", b"caf\xE9\n")
            .unwrap_err()
            .to_string();
        assert!(latin.contains("not UTF-8"), "{latin}");
    }
}
