//! What `roster import` prints: one summary of a run, as text or one JSON object, and the
//! exit code it implies (0 applied, 2 file rejected as a whole, 1 anything else).

use std::io::Write;

use std::fmt;

use roster_shared::db::entity::run;
use roster_shared::db::runs;
use roster_shared::model::change::ChangeCounts;
use roster_shared::model::envelope::{RowError, Severity, SyncMode};
use roster_shared::model::ids::TenantId;
use roster_shared::model::related::RelatedCounts;
use roster_shared::model::run::RunState;
use serde::{Serialize, Serializer};

/// How an import ended: the state its run reached, or a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The run reached this state (or, for a file refused by a dry run, would have).
    Run(RunState),
    /// A dry run that would apply.
    DryRun,
}

impl Status {
    /// The status as printed: a run state's name, or `dry_run`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Run(state) => state.name(),
            Status::DryRun => "dry_run",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One row error as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLine {
    /// Line in the file, when known.
    pub line: Option<u64>,
    /// Column header or field path, when known.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl From<RowError> for ErrorLine {
    fn from(e: RowError) -> Self {
        ErrorLine {
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// Where a row error or note points: `line 7, column "Manager"`.
fn place(e: &ErrorLine) -> String {
    let mut place = Vec::new();
    if let Some(line) = e.line {
        place.push(format!("line {line}"));
    }
    if let Some(column) = &e.column {
        place.push(format!("column {column:?}"));
    }
    place.join(", ")
}

/// Row errors, notes and warnings, apart.
fn split(rows: Vec<RowError>) -> (Vec<ErrorLine>, Vec<ErrorLine>, Vec<ErrorLine>) {
    let (mut errors, mut notes, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match row.severity {
            Severity::Error => errors.push(ErrorLine::from(row)),
            Severity::Note => notes.push(ErrorLine::from(row)),
            Severity::Warning => warnings.push(ErrorLine::from(row)),
        }
    }
    (errors, notes, warnings)
}

/// The summary of an import (or a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The run, absent for a dry run.
    pub run_id: Option<String>,
    /// Whose directory.
    pub tenant: String,
    /// `applied`, `rejected`, `held`, `failed`, `superseded` or `dry_run`.
    pub status: Status,
    /// Data rows read.
    pub rows_read: u64,
    /// People created.
    pub created: u64,
    /// People updated.
    pub updated: u64,
    /// People deactivated.
    pub deactivated: u64,
    /// People reactivated.
    pub reactivated: u64,
    /// People unchanged.
    pub unchanged: u64,
    /// Rows rejected alone.
    pub rejected: u64,
    /// Rows skipped on purpose (Active Directory accounts without an email).
    pub skipped: u64,
    /// The row errors (the first ones, when there are very many), or the whole-file error.
    pub errors: Vec<ErrorLine>,
    /// Notes on rows skipped or read with something left out (the first ones).
    pub notes: Vec<ErrorLine>,
    /// Warnings on rows applied all the same (a manager not in the directory), the
    /// first ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ErrorLine>,
    /// Why the run was rejected, held, failed or superseded.
    pub reason: Option<String>,
    /// The file's name.
    pub file: String,
    /// Full snapshot or delta.
    pub mode: SyncMode,
    /// What changed of groups, memberships and contact details (absent when the file
    /// has none, or nothing of them was applied yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<RelatedCounts>,
    /// A dry run's change list, when asked for (`--changes`): printed in place of the
    /// summary, which it then carries under `summary`.
    #[serde(skip)]
    pub changes: Option<roster_shared::model::review::ChangeList>,
}

impl Summary {
    /// The summary of a stored run with its stored errors.
    pub fn of_run(run: &run::Model, errors: Vec<RowError>) -> Summary {
        let state = run.state;
        let counts = runs::counts(run);
        let (mut errors, notes, warnings) = split(errors);
        if state == RunState::Rejected {
            errors.insert(
                0,
                ErrorLine {
                    line: None,
                    column: None,
                    message: run.reason.clone().unwrap_or_default(),
                },
            );
        }
        Summary {
            run_id: Some(run.id.clone()),
            tenant: run.tenant_id.clone(),
            status: Status::Run(state),
            rows_read: run.rows_read as u64,
            created: counts.created,
            updated: counts.updated,
            deactivated: counts.deactivated,
            reactivated: counts.reactivated,
            unchanged: run.unchanged as u64,
            rejected: run.rejected as u64,
            skipped: run.skipped as u64,
            errors,
            notes,
            warnings,
            reason: run.reason.clone(),
            file: run.file_name.clone(),
            mode: run.mode,
            // A run whose file had related records reports their counts, zeros too.
            related: run.related_key.as_ref().map(|_| {
                run.related_counts
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok())
                    .unwrap_or_default()
            }),
            changes: None,
        }
    }

    /// A dry run's summary.
    #[allow(clippy::too_many_arguments)]
    pub fn dry_run(
        tenant: &TenantId,
        file: &str,
        mode: SyncMode,
        rows_read: u64,
        rejected: u64,
        skipped: u64,
        counts: ChangeCounts,
        unchanged: u64,
        errors: Vec<RowError>,
        reason: Option<String>,
    ) -> Summary {
        let (errors, notes, warnings) = split(errors);
        Summary {
            run_id: None,
            tenant: tenant.to_string(),
            status: Status::DryRun,
            rows_read,
            created: counts.created,
            updated: counts.updated,
            deactivated: counts.deactivated,
            reactivated: counts.reactivated,
            unchanged,
            rejected,
            skipped,
            errors,
            notes,
            warnings,
            reason,
            file: file.to_owned(),
            mode,
            related: None,
            changes: None,
        }
    }

    /// A file refused as a whole before any run existed (a dry run).
    pub fn refused(tenant: &TenantId, file: &str, mode: SyncMode, why: String) -> Summary {
        Summary {
            run_id: None,
            tenant: tenant.to_string(),
            status: Status::Run(RunState::Rejected),
            rows_read: 0,
            created: 0,
            updated: 0,
            deactivated: 0,
            reactivated: 0,
            unchanged: 0,
            rejected: 0,
            skipped: 0,
            notes: Vec::new(),
            warnings: Vec::new(),
            errors: vec![ErrorLine {
                line: None,
                column: None,
                message: why.clone(),
            }],
            reason: Some(why),
            file: file.to_owned(),
            mode,
            related: None,
            changes: None,
        }
    }

    /// The process exit code this outcome means.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Run(RunState::Applied) | Status::DryRun => 0,
            Status::Run(RunState::Rejected) => 2,
            Status::Run(_) => 1,
        }
    }

    /// Writes the summary for people.
    pub fn write_text(&self, mut out: impl Write) -> std::io::Result<()> {
        let run = self
            .run_id
            .as_deref()
            .unwrap_or("(dry run: nothing written)");
        writeln!(
            out,
            "{}: tenant {}, run {run}: {}",
            self.file, self.tenant, self.status
        )?;
        if let Some(reason) = &self.reason {
            writeln!(out, "  {reason}")?;
        }
        for (name, value) in [
            ("rows read", self.rows_read),
            ("created", self.created),
            ("updated", self.updated),
            ("deactivated", self.deactivated),
            ("reactivated", self.reactivated),
            ("unchanged", self.unchanged),
            ("rejected", self.rejected),
        ] {
            writeln!(out, "  {name:<12} {value}")?;
        }
        if self.skipped > 0 {
            writeln!(out, "  {:<12} {}", "skipped", self.skipped)?;
        }
        if let Some(r) = &self.related {
            for (name, value) in [
                ("groups created", r.groups_created),
                ("groups renamed", r.groups_renamed),
                ("groups removed", r.groups_removed),
                ("members added", r.memberships_added),
                ("members removed", r.memberships_removed),
                ("managers changed", r.memberships_changed),
                ("contacts changed", r.contacts_changed),
            ] {
                if value > 0 {
                    writeln!(out, "  {name:<16} {value}")?;
                }
            }
        }
        let row_errors: Vec<&ErrorLine> = self
            .errors
            .iter()
            .filter(|e| e.line.is_some() || e.column.is_some())
            .collect();
        if !row_errors.is_empty() {
            writeln!(out, "rejected rows:")?;
            for e in row_errors.iter().take(50) {
                writeln!(out, "  {}: {}", place(e), e.message)?;
            }
            if row_errors.len() > 50 || self.rejected as usize > row_errors.len() {
                writeln!(
                    out,
                    "  ... {} rows rejected in all (see `roster runs --json`)",
                    self.rejected
                )?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(out, "warnings:")?;
            for e in self.warnings.iter().take(50) {
                writeln!(out, "  {}: {}", place(e), e.message)?;
            }
            if self.warnings.len() > 50 {
                writeln!(out, "  ... {} warnings in all", self.warnings.len())?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(out, "notes:")?;
            for e in self.notes.iter().take(20) {
                writeln!(out, "  {}: {}", place(e), e.message)?;
            }
            if self.notes.len() > 20 {
                writeln!(out, "  ... {} notes in all", self.notes.len())?;
            }
        }
        Ok(())
    }
}
