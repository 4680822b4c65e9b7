//! Gathers mapped rows into a compact arena, then sorts them by email, turns repeated
//! emails into row errors (the first row wins) and writes the snapshot. Memory holds at
//! most `sort_memory` bytes of encoded rows plus 48 bytes a row of them: a file whose
//! rows encode to more is sorted in runs of that size, each written to a scratch file,
//! and the runs are merged into the snapshot (an external merge sort), so a file of any
//! size is parsed in bounded memory.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use roster_shared::model::envelope::{Covered, RowError, Severity};
use roster_shared::model::snapshot::{encode_line, encode_protected, line_email};

use crate::ParseLimits;
use crate::error::RejectReason;
use crate::links::{Links, UnknownManager};
use crate::rows::RowOutcome;

/// Bytes of encoded rows sorted in memory at once unless set otherwise: a file of up to
/// about 1.4 million rows of 120 bytes is sorted without touching the disk.
pub const DEFAULT_SORT_MEMORY: usize = 192 << 20;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The email's first 16 bytes, big-endian and zero-padded: most comparisons end here,
    /// without touching the arena.
    prefix: u128,
    start: usize,
    len: u32,
    email_len: u32,
    ordinal: u32,
    line: u64,
    protected: bool,
}

/// Bytes of an entry's header in a run file: `len`, `email_len`, `ordinal` (u32 each),
/// `line` (u64), `protected` (u8), little-endian, then the `len` bytes of its line.
const RUN_HEADER: usize = 21;

/// Offset of the email in an encoded snapshot line (after the hash and the flag).
const EMAIL_AT: usize = 19;

fn prefix_of(email: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = email.len().min(16);
    bytes[..n].copy_from_slice(&email[..n]);
    u128::from_be_bytes(bytes)
}

/// Sorts `entries` (rows in `arena`) by email, rows that are people before protected
/// ones (rejected rows that keep their email), then by their order in the file.
fn sort_entries(arena: &[u8], entries: &mut [Entry]) {
    let email = |e: &Entry| &arena[e.start + EMAIL_AT..e.start + EMAIL_AT + e.email_len as usize];
    entries.sort_unstable_by(|a, b| {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| email(a).cmp(email(b)))
            .then(a.protected.cmp(&b.protected))
            .then(a.ordinal.cmp(&b.ordinal))
    });
}

/// Collects rows as they are read.
#[derive(Debug)]
pub struct Collector {
    limits: ParseLimits,
    arena: Vec<u8>,
    entries: Vec<Entry>,
    errors: Vec<RowError>,
    rows_read: u64,
    rejected: u64,
    skipped: u64,
    /// Encoded bytes sorted in memory at once.
    sort_memory: usize,
    /// Where runs are written (`None`: the system's temporary folder).
    spill_dir: Option<PathBuf>,
    /// Sorted runs not merged yet, each an unnamed file read from its start.
    runs: Vec<File>,
    /// Runs written so far.
    spilled: usize,
    /// Why writing a run failed, once it has.
    spill_error: Option<io::Error>,
    /// Employee ids and managers of the rows ([`crate::links`]).
    links: Links,
}

impl Collector {
    /// An empty collector for a file read within `limits`, sorting up to `sort_memory`
    /// bytes of rows in memory and writing larger files' runs to `spill_dir` (`None`:
    /// the system's temporary folder).
    pub fn new(limits: ParseLimits, sort_memory: usize, spill_dir: Option<PathBuf>) -> Self {
        Collector {
            limits,
            arena: Vec::new(),
            entries: Vec::new(),
            errors: Vec::new(),
            rows_read: 0,
            rejected: 0,
            skipped: 0,
            sort_memory: sort_memory.max(1),
            spill_dir,
            runs: Vec::new(),
            spilled: 0,
            spill_error: None,
            links: Links::default(),
        }
    }

    /// The limits the file is read within.
    pub fn limits(&self) -> &ParseLimits {
        &self.limits
    }

    /// The refusal of the whole file once it has more rows than the limit allows, or
    /// once a run of its sorted rows could not be written (a scratch disk full, say:
    /// [`RejectReason::Scratch`], not the file's fault).
    pub fn over_limit(&self) -> Option<RejectReason> {
        if let Some(e) = &self.spill_error {
            return Some(RejectReason::Scratch(io::Error::new(
                e.kind(),
                e.to_string(),
            )));
        }
        (self.rows_read > self.limits.max_rows).then_some(RejectReason::TooManyRows {
            limit: self.limits.max_rows,
        })
    }

    /// Adds the outcome of one row that starts at `line` (0 when unknown).
    pub fn push(&mut self, outcome: RowOutcome, line: u64) {
        let start = self.arena.len();
        // A second row with another's employee id is rejected, its email kept.
        let ordinal = self.rows_read as u32;
        let outcome = match outcome {
            RowOutcome::Person(p) | RowOutcome::Noted(p, _) if self.links.would_repeat_id(&p) => {
                let error = self.links.check(&p, ordinal, line);
                RowOutcome::Rejected {
                    email: Some(p.email),
                    errors: error.into_iter().collect(),
                }
            }
            RowOutcome::Person(p) => {
                self.links.check(&p, ordinal, line);
                RowOutcome::Person(p)
            }
            RowOutcome::Noted(p, note) => {
                self.links.check(&p, ordinal, line);
                RowOutcome::Noted(p, note)
            }
            RowOutcome::Rejected {
                email: Some(email),
                errors,
            } => {
                self.links.rejected(&email);
                RowOutcome::Rejected {
                    email: Some(email),
                    errors,
                }
            }
            other => other,
        };
        let (protected, email_len) = match outcome {
            RowOutcome::Blank => return,
            RowOutcome::Skipped(note) => {
                self.rows_read += 1;
                self.skipped += 1;
                self.errors.push(note);
                return;
            }
            RowOutcome::Person(p) => {
                encode_line(&p, &mut self.arena);
                (false, p.email.len())
            }
            RowOutcome::Noted(p, note) => {
                self.errors.push(note);
                encode_line(&p, &mut self.arena);
                (false, p.email.len())
            }
            RowOutcome::Rejected { email, errors } => {
                self.rejected += 1;
                self.errors.extend(errors);
                match email {
                    Some(email) => {
                        encode_protected(&email, &mut self.arena);
                        (true, email.len())
                    }
                    None => {
                        self.rows_read += 1;
                        return;
                    }
                }
            }
        };
        let email = &self.arena[start + EMAIL_AT..start + EMAIL_AT + email_len];
        debug_assert_eq!(email, line_email(&self.arena[start..]));
        self.entries.push(Entry {
            prefix: prefix_of(email),
            start,
            len: (self.arena.len() - start) as u32,
            email_len: email_len as u32,
            ordinal: self.rows_read as u32,
            line,
            protected,
        });
        self.rows_read += 1;
        if self.arena.len() >= self.sort_memory
            && self.spill_error.is_none()
            && let Err(e) = self.spill()
        {
            self.spill_error = Some(e);
        }
    }

    /// Sorts the rows held in memory and writes them to a new run, emptying the arena.
    fn spill(&mut self) -> io::Result<()> {
        sort_entries(&self.arena, &mut self.entries);
        let file = match &self.spill_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        let mut out = BufWriter::with_capacity(RUN_BUFFER, file);
        for e in &self.entries {
            write_run_entry(&mut out, e, &self.arena[e.start..e.start + e.len as usize])?;
        }
        let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.spilled += 1;
        self.arena.clear();
        self.entries.clear();
        if self.runs.len() >= MAX_RUNS {
            // Merged into one run, so a huge file (or a tiny sort memory) neither holds
            // a file open per run nor makes the final merge scan hundreds of them.
            let runs = std::mem::take(&mut self.runs);
            let merged = merge(runs, self.spill_dir.as_deref(), Merged::Run)?;
            self.runs.push(merged);
        }
        Ok(())
    }

    /// Adds an error that rejects one row on its own terms (a record that is not an
    /// object, a row with the wrong number of fields and no readable email).
    pub fn reject(&mut self, error: RowError) {
        self.rows_read += 1;
        self.rejected += 1;
        self.errors.push(error);
    }

    /// Rows seen so far (blank ones not counted).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Sorts and de-duplicates. `email_column` labels duplicate-email errors. Fails only
    /// when a run could not be written or read back ([`RejectReason::Scratch`]).
    pub fn finish(
        mut self,
        email_column: impl Fn(u32) -> Option<String>,
    ) -> Result<ParsedFile, RejectReason> {
        if let Some(refusal) = self.spill_error.take() {
            return Err(RejectReason::Scratch(refusal));
        }
        // Rows in a manager cycle are rejected: their lines become protected ones.
        let links = std::mem::take(&mut self.links).finish();
        self.rejected += links.rejected.len() as u64;
        self.errors.extend(links.errors);
        let mut dedupe = Dedupe::new(&email_column, &links.rejected);
        let mut runs = 1;
        let snapshot = if self.runs.is_empty() {
            let mut arena = std::mem::take(&mut self.arena);
            let mut entries = std::mem::take(&mut self.entries);
            for entry in &mut entries {
                if !entry.protected && links.rejected.contains(&entry.ordinal) {
                    let start = arena.len();
                    let email =
                        arena[entry.start + EMAIL_AT..][..entry.email_len as usize].to_vec();
                    encode_protected(&String::from_utf8_lossy(&email), &mut arena);
                    entry.start = start;
                    entry.len = (arena.len() - start) as u32;
                    entry.protected = true;
                }
            }
            sort_entries(&arena, &mut entries);
            // De-duplicated in place: a second list of entries would add 48 bytes a row
            // to the parse's peak.
            let mut kept = 0usize;
            for i in 0..entries.len() {
                let entry = entries[i];
                let email = &arena[entry.start + EMAIL_AT..][..entry.email_len as usize];
                if dedupe.keep(&entry, email) {
                    entries[kept] = entry;
                    kept += 1;
                }
            }
            entries.truncate(kept);
            Sorted::Memory { arena, entries }
        } else {
            if !self.entries.is_empty() {
                self.spill().map_err(RejectReason::Scratch)?;
            }
            // The arena's memory is not needed by the merge.
            self.arena = Vec::new();
            self.entries = Vec::new();
            let files = std::mem::take(&mut self.runs);
            runs = self.spilled;
            Sorted::Spilled(
                merge(
                    files,
                    self.spill_dir.as_deref(),
                    Merged::Snapshot(&mut dedupe),
                )
                .map_err(RejectReason::Scratch)?,
            )
        };
        let Dedupe {
            errors,
            kept,
            protected,
            lines,
            ..
        } = dedupe;
        self.rejected += errors.len() as u64;
        self.errors.extend(errors);
        self.errors.sort_by_key(|e| e.line);
        Ok(ParsedFile {
            snapshot,
            errors: self.errors,
            rows_read: self.rows_read,
            rejected: self.rejected,
            skipped: self.skipped,
            accepted: kept - protected,
            lines,
            unknown_managers: links.unknown,
            runs,
            covered: Covered::default(),
            layout: None,
            related: None,
            mode: None,
        })
    }
}

/// Write and read buffer of one run file.
const RUN_BUFFER: usize = 1 << 20;

/// Runs kept before they are merged into one.
const MAX_RUNS: usize = 32;

/// Writes one entry of a run: its header, then its line.
fn write_run_entry(out: &mut impl Write, e: &Entry, line: &[u8]) -> io::Result<()> {
    let mut header = [0u8; RUN_HEADER];
    header[0..4].copy_from_slice(&e.len.to_le_bytes());
    header[4..8].copy_from_slice(&e.email_len.to_le_bytes());
    header[8..12].copy_from_slice(&e.ordinal.to_le_bytes());
    header[12..20].copy_from_slice(&e.line.to_le_bytes());
    header[20] = u8::from(e.protected);
    out.write_all(&header)?;
    out.write_all(line)
}

/// What a merge makes.
enum Merged<'d, 'a> {
    /// One run holding every entry of the runs merged, duplicates included.
    Run,
    /// The snapshot: the lines `dedupe` keeps.
    Snapshot(&'d mut Dedupe<'a>),
}

/// How the message of a row repeating an earlier row's email starts.
pub(crate) const DUPLICATE_EMAIL: &str = "duplicate email ";

/// Keeps the first row of each email in a stream sorted by [`sort_entries`]' order, and
/// makes each later row of that email a row error, unless one of the two is protected (a
/// rejected row, which has its own error).
struct Dedupe<'a> {
    email_column: &'a dyn Fn(u32) -> Option<String>,
    /// Rows (by ordinal) rejected once every row was read: written as protected lines.
    protect: &'a std::collections::HashSet<u32>,
    last: Option<Entry>,
    last_email: Vec<u8>,
    errors: Vec<RowError>,
    kept: u64,
    protected: u64,
    /// The source line of each kept entry, in snapshot order (0: unknown).
    lines: Vec<u32>,
}

impl<'a> Dedupe<'a> {
    fn new(
        email_column: &'a dyn Fn(u32) -> Option<String>,
        protect: &'a std::collections::HashSet<u32>,
    ) -> Self {
        Dedupe {
            email_column,
            protect,
            last: None,
            last_email: Vec::new(),
            errors: Vec::new(),
            kept: 0,
            protected: 0,
            lines: Vec::new(),
        }
    }

    /// Whether `entry`, whose email is `email`, is kept.
    fn keep(&mut self, entry: &Entry, email: &[u8]) -> bool {
        match self.last {
            Some(prev) if self.last_email == email => {
                if !entry.protected && !prev.protected {
                    let where_first = if prev.line > 0 {
                        format!("line {}", prev.line)
                    } else {
                        format!("record {}", prev.ordinal + 1)
                    };
                    self.errors.push(RowError {
                        line: (entry.line > 0).then_some(entry.line),
                        column: (self.email_column)(entry.ordinal),
                        message: format!(
                            "{DUPLICATE_EMAIL}{}: already on {where_first}; the first row was \
                             kept",
                            String::from_utf8_lossy(email)
                        ),
                        severity: Severity::Error,
                    });
                }
                false
            }
            _ => {
                self.last = Some(*entry);
                self.last_email.clear();
                self.last_email.extend_from_slice(email);
                self.kept += 1;
                self.protected +=
                    u64::from(entry.protected || self.protect.contains(&entry.ordinal));
                self.lines.push(u32::try_from(entry.line).unwrap_or(0));
                true
            }
        }
    }
}

/// One run being merged: its next entry and that entry's line.
struct RunReader {
    input: BufReader<File>,
    entry: Option<Entry>,
    line: Vec<u8>,
}

impl RunReader {
    fn new(file: File) -> io::Result<Self> {
        let mut run = RunReader {
            input: BufReader::with_capacity(RUN_BUFFER, file),
            entry: None,
            line: Vec::new(),
        };
        run.advance()?;
        Ok(run)
    }

    /// Reads the next entry, or notes the end of the run.
    fn advance(&mut self) -> io::Result<()> {
        let mut header = [0u8; RUN_HEADER];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.entry = None;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let len = u32_at(0);
        let email_len = u32_at(4);
        self.line.resize(len as usize, 0);
        self.input.read_exact(&mut self.line)?;
        let email = self
            .line
            .get(EMAIL_AT..EMAIL_AT + email_len as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a run entry is cut"))?;
        self.entry = Some(Entry {
            prefix: prefix_of(email),
            start: 0,
            len,
            email_len,
            ordinal: u32_at(8),
            line: u64::from_le_bytes(header[12..20].try_into().expect("8 bytes")),
            protected: header[20] != 0,
        });
        Ok(())
    }

    fn email(&self) -> &[u8] {
        let len = self.entry.map_or(0, |e| e.email_len as usize);
        &self.line[EMAIL_AT..EMAIL_AT + len]
    }
}

/// Merges sorted `runs` into one new unnamed file in `dir` (or the system's temporary
/// folder), a run or the snapshot as `into` says; returns it positioned at its start.
fn merge(
    runs: Vec<File>,
    dir: Option<&std::path::Path>,
    mut into: Merged<'_, '_>,
) -> io::Result<File> {
    let mut runs: Vec<RunReader> = runs
        .into_iter()
        .map(RunReader::new)
        .collect::<Result<_, _>>()?;
    let file = match dir {
        Some(dir) => tempfile::tempfile_in(dir)?,
        None => tempfile::tempfile()?,
    };
    let mut out = BufWriter::with_capacity(RUN_BUFFER, file);
    loop {
        // Few runs (one per `sort_memory` bytes): a scan finds the least.
        let mut least: Option<usize> = None;
        for (i, run) in runs.iter().enumerate() {
            let Some(e) = run.entry else { continue };
            let better = match least {
                None => true,
                Some(j) => {
                    let l = runs[j].entry.expect("a run with an entry");
                    e.prefix
                        .cmp(&l.prefix)
                        .then_with(|| run.email().cmp(runs[j].email()))
                        .then(e.protected.cmp(&l.protected))
                        .then(e.ordinal.cmp(&l.ordinal))
                        .is_lt()
                }
            };
            if better {
                least = Some(i);
            }
        }
        let Some(i) = least else { break };
        let run = &mut runs[i];
        let entry = run.entry.expect("the least run has an entry");
        let email_len = entry.email_len as usize;
        match &mut into {
            Merged::Run => write_run_entry(&mut out, &entry, &run.line)?,
            Merged::Snapshot(dedupe) => {
                let email = &run.line[EMAIL_AT..EMAIL_AT + email_len];
                if dedupe.keep(&entry, email) {
                    if !entry.protected && dedupe.protect.contains(&entry.ordinal) {
                        let mut line = Vec::new();
                        encode_protected(&String::from_utf8_lossy(email), &mut line);
                        out.write_all(&line)?;
                    } else {
                        out.write_all(&run.line)?;
                    }
                }
            }
        }
        run.advance()?;
    }
    let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Where a parsed file's sorted rows are.
#[derive(Debug)]
enum Sorted {
    /// In memory: the rows and their order.
    Memory { arena: Vec<u8>, entries: Vec<Entry> },
    /// Merged into an unnamed scratch file.
    Spilled(File),
}

/// A parsed file: the sorted snapshot, ready to write, and the rejected rows.
#[derive(Debug)]
pub struct ParsedFile {
    snapshot: Sorted,
    /// Every row error, and the note of every skipped row, in file order.
    pub errors: Vec<RowError>,
    /// Data rows read (blank rows not counted).
    pub rows_read: u64,
    /// Rows rejected alone.
    pub rejected: u64,
    /// Rows skipped on purpose, each with a note among `errors`.
    pub skipped: u64,
    /// People in the snapshot.
    pub accepted: u64,
    /// The line each of the snapshot's entries starts on in the file, in snapshot order
    /// (0: unknown, or past `u32::MAX`): see [`ParsedFile::lines_bytes`].
    pub lines: Vec<u32>,
    /// Rows whose manager is not among the file's people: warnings once the directory
    /// is known not to hold them either ([`ParsedFile::warn_unknown_managers`]).
    pub unknown_managers: Vec<UnknownManager>,
    /// Runs the rows were sorted in: 1 in memory, more when they were written to
    /// scratch files and merged.
    pub runs: usize,
    /// What the file's columns feed (the reader sets it).
    pub covered: Covered,
    /// How a delimited file was laid out, for its reject file (`None` for JSON).
    pub layout: Option<crate::rejects::Layout>,
    /// The file's related records (a bundle's groups and memberships, a contact-details
    /// file's rows), when it has any.
    pub related: Option<roster_shared::model::related::RelatedSnapshot>,
    /// The sync mode the file's kind dictates for its people, over the delivery's
    /// (a contact-details file changes no one: `delta`).
    pub mode: Option<roster_shared::model::envelope::SyncMode>,
}

impl ParsedFile {
    /// Writes the snapshot (sorted by email, see `roster_shared::model::snapshot`).
    pub fn write_snapshot(&self, mut out: impl Write) -> io::Result<()> {
        match &self.snapshot {
            Sorted::Memory { arena, entries } => {
                for e in entries {
                    out.write_all(&arena[e.start..e.start + e.len as usize])?;
                }
            }
            Sorted::Spilled(file) => {
                let mut file = file;
                file.seek(SeekFrom::Start(0))?;
                io::copy(&mut file, &mut out)?;
            }
        }
        out.flush()
    }

    /// [`ParsedFile::lines`] as stored beside the snapshot (`BlobStore::lines_key`): one
    /// little-endian `u32` per snapshot entry, so planning can name the line of a row it
    /// refuses.
    pub fn lines_bytes(&self) -> Vec<u8> {
        self.lines.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// The keys (emails) of the snapshot's people, rejected rows' included, sorted.
    pub fn keys(&self) -> io::Result<Vec<String>> {
        let mut bytes = Vec::new();
        self.write_snapshot(&mut bytes)?;
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|line| line.len() > 19)
            .map(|line| {
                String::from_utf8_lossy(roster_shared::model::snapshot::line_email(line))
                    .into_owned()
            })
            .collect())
    }

    /// Turns the rows of [`ParsedFile::unknown_managers`] whose manager `known` does not
    /// know into warnings on those rows (in line order among the errors).
    pub fn warn_unknown_managers(&mut self, known: impl Fn(&str) -> bool) {
        let unknown = std::mem::take(&mut self.unknown_managers);
        let before = self.errors.len();
        self.errors.extend(
            unknown
                .iter()
                .filter(|u| !known(&u.manager))
                .map(UnknownManager::warning),
        );
        if self.errors.len() > before {
            self.errors.sort_by_key(|e| e.line);
        }
    }

    /// Writes the row errors (and notes) as JSON lines: the reject file of a JSON file
    /// (a delimited file's is [`crate::rejects::write`]).
    pub fn write_rejects(&self, mut out: impl Write) -> io::Result<()> {
        for e in &self.errors {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}
