//! The tenants file: the tenants, their sources and their push logins, as operators keep
//! them under version control (a ConfigMap in Kubernetes), read with `serde-saphyr` (a
//! maintained YAML reader that builds no untyped tree and refuses duplicate keys;
//! `serde_yaml` is archived).
//!
//! [`parse`] checks the whole file and reports every problem at once, each naming its
//! key path (`tenants.acme.sources.hr-sftp.passwrd: unknown key`); [`apply`] then
//! declares it in one transaction: sources added or updated, sources and push logins no
//! longer in the file disabled or removed (a source's history is kept). Secrets are
//! never in the file: a source names the environment variable or the file that holds
//! each one, and a push login holds only a password hash and public keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roster_shared::db::Db;
use roster_shared::model::ids::TenantId;
use roster_shared::model::mapping::{ValueRules, normalize_header};
use roster_shared::model::person::MappingTarget;
use roster_shared::sea_orm::{DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::db::{self, Declared};
use super::spec::SourceSpec;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    /// Every tenant, by id.
    pub tenants: BTreeMap<String, TenantSpec>,
}

/// One tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Its sources, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSpec>,
    /// Its login to our SFTP server (`roster push-server`), if it pushes files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
    /// Its organizations, if it lists them: a row naming any other organization is then
    /// rejected alone, with its line and the unknown name (names match whatever their
    /// case, and are stored as written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<String>>,
    /// How its files are read, over the built-in aliases: when given, it replaces the
    /// tenant's column mappings (those `roster mapping set` made included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingSpec>,
    /// The names of its three-file bundle's files, when not `users.csv`, `groups.csv`
    /// and `groups-mapping.csv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<roster_shared::model::related::BundleFiles>,
    /// Its brake thresholds over the defaults, and how its file names carry the time a
    /// file was produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<roster_shared::model::safety::Safety>,
    /// Its webhook endpoints, which receive its run outcomes and directory events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookSpec>,
    /// Whether new people's `created` events ask for an invite (default false; an
    /// import may say otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_new_users: Option<bool>,
    /// Whether the tenant's first import asks for invites too (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_on_first_import: Option<bool>,
}

/// One of a tenant's `webhooks:`: `{url, secret_env}`, the secret (`whsec_` + base64)
/// being read from that environment variable when a message is sent.
pub use roster_shared::webhooks::Endpoint as WebhookSpec;

impl TenantSpec {
    /// Its webhook settings, as stored with the tenant.
    pub fn webhook_settings(&self) -> roster_shared::webhooks::TenantWebhooks {
        roster_shared::webhooks::TenantWebhooks {
            endpoints: self.webhooks.clone(),
            invite_new_users: self.invite_new_users.unwrap_or(false),
            invite_on_first_import: self.invite_on_first_import.unwrap_or(false),
        }
    }
}

/// What is wrong with a tenant's `webhooks:` (`at` names the key).
fn check_webhooks(webhooks: &[WebhookSpec], at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, hook) in webhooks.iter().enumerate() {
        let at = format!("{at}[{i}]");
        match url::Url::parse(&hook.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => problems.push(format!("{at}.url: an http:// or https:// URL with a host")),
            Err(e) => problems.push(format!("{at}.url: not a URL ({e})")),
        }
        let name = &hook.secret_env;
        let plausible = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plausible {
            problems.push(format!(
                "{at}.secret_env: the name of an environment variable (letters, digits, '_'), \
                 not the secret itself"
            ));
        }
        if webhooks[..i].iter().any(|h| h.url == hook.url) {
            problems.push(format!("{at}.url: the same URL is listed twice"));
        }
    }
    problems
}

/// A tenant's `mapping:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// Column header to what it feeds: a field name, `name`, `extra` or `ignore`.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Columns not read at all.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Per column header or field name: a value to the value read instead
    /// (`status: {Left: inactive, Sabbatical: active}`).
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// Per text field: the value a row gets when it leaves the field empty.
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
}

impl MappingSpec {
    /// The column mappings it declares (normalised header, target), and what is wrong
    /// with it, each problem naming its key under `at`.
    pub fn columns(&self, at: &str) -> (Vec<(String, MappingTarget)>, Vec<String>) {
        let mut columns: Vec<(String, MappingTarget)> = Vec::new();
        let mut problems = Vec::new();
        let declared = self
            .columns
            .iter()
            .map(|(h, t)| (h.as_str(), t.as_str()))
            .chain(self.ignore.iter().map(|h| (h.as_str(), "ignore")));
        for (header, target) in declared {
            let key = normalize_header(header);
            if key.is_empty() {
                problems.push(format!(
                    "{at}.columns: the header {header:?} has no letters or digits"
                ));
                continue;
            }
            match target.parse::<MappingTarget>() {
                Ok(_) if columns.iter().any(|(k, _)| *k == key) => {
                    problems.push(format!(
                        "{at}: the header {header:?} is mapped twice (headers match whatever \
                         their case, spaces and punctuation)"
                    ));
                }
                Ok(target) => columns.push((key, target)),
                Err(e) => problems.push(format!("{at}.columns.{header}: {e}")),
            }
        }
        problems.extend(
            self.rules()
                .problems()
                .into_iter()
                .map(|p| format!("{at}.{p}")),
        );
        (columns, problems)
    }

    /// Its value rules.
    pub fn rules(&self) -> ValueRules {
        ValueRules {
            values: self.values.clone(),
            defaults: self.defaults.clone(),
        }
    }
}

/// A tenant's login to our SFTP server. The login name is the tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    /// A crypt(3) SHA-512 hash (`$6$...`) of the password (`roster push-server
    /// hash-password` makes one); absent: no password login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Public keys that may log in, as OpenSSH `authorized_keys` lines without options.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
}

/// A tenants file that cannot be applied: every problem found, each naming its key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}", problems.join("; "))]
pub struct Invalid {
    /// The file, as named.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<String>,
}

/// Keys that would hold a secret, refused with a hint.
const SECRET_KEYS: [&str; 6] = ["password", "token", "secret", "private_key", "key", "value"];

/// Reads and checks a tenants file. `file` names it in errors; relative paths in it
/// (`known_hosts`, `request_body_file`, ...) are taken from `base`, the file's folder.
pub fn parse(text: &str, file: &str, base: &Path) -> Result<TenantsFile, Invalid> {
    let invalid = |problems: Vec<String>| Invalid {
        file: file.to_owned(),
        problems,
    };
    let tree: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| invalid(vec![format!("not valid YAML: {e}")]))?;
    if tree.is_null() {
        return Err(invalid(vec![
            "the file is empty; expected `tenants:`".into(),
        ]));
    }
    let mut parsed: TenantsFile = serde_path_to_error::deserialize(&tree).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let mut message = if let Some(key) = unknown_key(&inner) {
            let at = if path == "." || path.is_empty() {
                key.to_owned()
            } else if path == key || path.ends_with(&format!(".{key}")) {
                path.clone()
            } else {
                format!("{path}.{key}")
            };
            let mut m = format!("{at}: unknown key");
            if SECRET_KEYS.contains(&key) {
                m.push_str(
                    " (secrets are never written in this file: name an environment variable \
                     or a file, e.g. password_env or password_file)",
                );
            }
            m
        } else {
            format!("{path}: {inner}")
        };
        if message.starts_with(".: ") {
            message = message[3..].to_owned();
        }
        invalid(vec![message])
    })?;
    let mut problems = Vec::new();
    for (id, tenant) in &mut parsed.tenants {
        let at = format!("tenants.{id}");
        if let Err(e) = TenantId::new(id.clone()) {
            problems.push(format!("{at}: {e}"));
        }
        for (name, source) in &mut tenant.sources {
            let at = format!("{at}.sources.{name}");
            if !valid_source_name(name) {
                problems.push(format!(
                    "{at}: a source name is 1 to 64 lowercase letters, digits, '-' or '_', \
                     starting with a letter or digit"
                ));
            }
            problems.extend(source.check(&at));
            resolve_paths(source, base);
        }
        if let Some(push) = &tenant.push {
            problems.extend(check_push(id, push, &format!("{at}.push")));
        }
        if let Some(mapping) = &tenant.mapping {
            problems.extend(mapping.columns(&format!("{at}.mapping")).1);
        }
        if let Some(bundle) = &tenant.bundle {
            problems.extend(bundle.problems(&format!("{at}.bundle")));
        }
        if let Some(safety) = &tenant.safety {
            problems.extend(safety.problems(&format!("{at}.safety")));
            if let Some(Err(e)) = safety
                .file_time
                .as_ref()
                .map(crate::file_time::FileTimePattern::new)
            {
                problems.push(format!("{at}.safety.file_time.{e}"));
            }
        }
        problems.extend(check_webhooks(&tenant.webhooks, &format!("{at}.webhooks")));
        for (i, name) in tenant.organizations.iter().flatten().enumerate() {
            if name.trim().is_empty() {
                problems.push(format!(
                    "{at}.organizations[{i}]: an organization name cannot be empty"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(invalid(problems))
    }
}

/// Reads and checks the tenants file at `path`.
pub fn read(path: &Path) -> Result<TenantsFile, Invalid> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Invalid {
        file: file.clone(),
        problems: vec![format!("cannot read it: {e}")],
    })?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    parse(&text, &file, &base)
}

/// The key serde names in an "unknown field" message.
fn unknown_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Makes the source's relative file paths relative to `base`.
fn resolve_paths(source: &mut SourceSpec, base: &Path) {
    let fix = |p: &mut Option<PathBuf>| {
        if let Some(path) = p
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    };
    fix(&mut source.password_file);
    fix(&mut source.private_key_file);
    fix(&mut source.known_hosts);
    fix(&mut source.ca_file);
    fix(&mut source.request_body_file);
    if let Some(auth) = &mut source.auth {
        fix(&mut auth.client_cert_file);
        fix(&mut auth.client_key_file);
    }
    if source.kind == super::SourceKind::Inbox
        && let Some(path) = &mut source.path
        && Path::new(path.as_str()).is_relative()
    {
        *path = base.join(&*path).display().to_string();
    }
}

/// Whether `id` can be a login name on the SFTP server (a system user name).
pub fn valid_login(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The key types an `authorized_keys` line may have.
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn check_push(id: &str, push: &PushSpec, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !valid_login(id) {
        problems.push(format!(
            "{at}: the tenant id is the login name, so it must be 1 to 32 lowercase letters, \
             digits, '_' or '-', starting with a letter or '_'"
        ));
    }
    if push.password_hash.is_none() && push.authorized_keys.is_empty() {
        problems.push(format!(
            "{at}: give a password_hash, authorized_keys, or both"
        ));
    }
    if let Some(hash) = &push.password_hash
        && !valid_sha512_crypt(hash)
    {
        problems.push(format!(
            "{at}.password_hash: not a crypt(3) SHA-512 hash ($6$salt$hash); \
             `roster push-server hash-password` makes one"
        ));
    }
    for (i, key) in push.authorized_keys.iter().enumerate() {
        if let Err(why) = check_public_key(key) {
            problems.push(format!("{at}.authorized_keys[{i}]: {why}"));
        }
    }
    problems
}

/// Whether `hash` has the shape of a crypt(3) SHA-512 hash: `$6$[rounds=N$]salt$hash`.
fn valid_sha512_crypt(hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix("$6$") else {
        return false;
    };
    let rest = match rest.strip_prefix("rounds=") {
        Some(r) => match r.split_once('$') {
            Some((n, tail)) if n.parse::<u32>().is_ok() => tail,
            _ => return false,
        },
        None => rest,
    };
    let crypt_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    match rest.split_once('$') {
        Some((salt, digest)) => {
            !salt.is_empty()
                && salt.len() <= 16
                && crypt_chars(salt)
                && digest.len() == 86
                && crypt_chars(digest)
        }
        None => false,
    }
}

/// Checks one `authorized_keys` line: `<type> <base64> [comment]`, no options.
fn check_public_key(line: &str) -> Result<(), String> {
    if line.contains(['\n', '\r', '\0']) {
        return Err("one key per entry, on one line".into());
    }
    let mut parts = line.split_whitespace();
    let kind = parts.next().unwrap_or("");
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "starts with {kind:?}, not a key type ({}); options are not allowed",
            KEY_TYPES.join(", ")
        ));
    }
    let blob = parts.next().unwrap_or("");
    let base64 = !blob.is_empty()
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !base64 {
        return Err("the key after the type is missing or not base64".into());
    }
    Ok(())
}

/// What applying a tenants file changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplySummary {
    /// Tenants in the file.
    pub tenants: u64,
    /// Sources added or changed.
    pub sources_upserted: u64,
    /// Sources disabled (left the file, or their tenant did).
    pub sources_disabled: u64,
    /// Push logins added, changed or removed.
    pub push_changed: u64,
}

/// Declares `file` in the database in one transaction (see the module documentation).
pub async fn apply(db: &Db, file: &TenantsFile) -> Result<ApplySummary, DbErr> {
    let before = db::tenants_declared(db).await?;
    let txn = db.conn().begin().await?;
    let mut summary = ApplySummary::default();
    for (id, tenant) in &file.tenants {
        let tenant_id = TenantId::new(id.clone()).map_err(|e| DbErr::Custom(e.to_string()))?;
        let declared: Vec<Declared> = tenant
            .sources
            .iter()
            .map(|(name, spec)| Declared {
                name: name.clone(),
                kind: spec.kind,
                spec: serde_json::to_string(spec).expect("a source serialises"),
                schedule: spec.schedule.clone(),
            })
            .collect();
        let applied = db::declare(&txn, &tenant_id, &declared).await?;
        roster_shared::db::tenants::set_organizations(
            &txn,
            &tenant_id,
            tenant.organizations.as_deref(),
        )
        .await?;
        roster_shared::db::tenants::set_bundle_files(&txn, &tenant_id, tenant.bundle.as_ref())
            .await?;
        roster_shared::db::tenants::set_safety(&txn, &tenant_id, tenant.safety.as_ref()).await?;
        let hooks = tenant.webhook_settings();
        roster_shared::webhooks::set(&txn, &tenant_id, Some(&hooks)).await?;
        if let Some(mapping) = &tenant.mapping {
            let (columns, _) = mapping.columns("");
            roster_shared::db::tenants::declare_mapping(
                &txn,
                &tenant_id,
                &columns,
                &mapping.rules(),
            )
            .await?;
        }
        summary.tenants += 1;
        summary.sources_upserted += applied.upserted;
        summary.sources_disabled += applied.disabled;
        let push = tenant
            .push
            .as_ref()
            .map(|p| (p.password_hash.as_deref(), p.authorized_keys.as_slice()));
        if db::declare_push(&txn, &tenant_id, push).await? {
            summary.push_changed += 1;
        }
    }
    for id in before.iter().filter(|id| !file.tenants.contains_key(*id)) {
        let Ok(tenant_id) = TenantId::new(id.clone()) else {
            continue;
        };
        summary.sources_disabled += db::disable_all(&txn, &tenant_id).await?;
        roster_shared::db::tenants::set_organizations(&txn, &tenant_id, None).await?;
        roster_shared::db::tenants::set_bundle_files(&txn, &tenant_id, None).await?;
        roster_shared::db::tenants::set_safety(&txn, &tenant_id, None).await?;
        roster_shared::webhooks::set(&txn, &tenant_id, None).await?;
        if db::declare_push(&txn, &tenant_id, None).await? {
            summary.push_changed += 1;
        }
    }
    txn.commit().await?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";

    fn parse_ok(text: &str) -> TenantsFile {
        parse(text, "tenants.yaml", Path::new("/etc/roster")).unwrap()
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text, "tenants.yaml", Path::new("/etc/roster"))
            .unwrap_err()
            .problems
    }

    #[test]
    fn webhooks_and_invite_settings_read_and_are_checked() {
        let file = parse_ok(
            "tenants:\n  acme:\n    webhooks:\n      - {url: https://hooks.acme.example/roster, secret_env: ACME_WHSEC}\n    invite_new_users: true\n",
        );
        let hooks = file.tenants["acme"].webhook_settings();
        assert_eq!(hooks.endpoints[0].url, "https://hooks.acme.example/roster");
        assert_eq!(hooks.endpoints[0].secret_env, "ACME_WHSEC");
        assert!(hooks.invite_new_users && !hooks.invite_on_first_import);
        let bad = problems(
            "tenants:\n  acme:\n    webhooks:\n      - {url: ftp://x.example/, secret_env: whsec_abc=}\n      - {url: ftp://x.example/, secret_env: OK}\n",
        );
        assert_eq!(
            bad,
            [
                "tenants.acme.webhooks[0].url: an http:// or https:// URL with a host",
                "tenants.acme.webhooks[0].secret_env: the name of an environment variable \
                 (letters, digits, '_'), not the secret itself",
                "tenants.acme.webhooks[1].url: an http:// or https:// URL with a host",
                "tenants.acme.webhooks[1].url: the same URL is listed twice",
            ]
        );
        let secret = problems(
            "tenants:\n  acme:\n    webhooks:\n      - {url: https://x.example/, secret: whsec_abc}\n",
        );
        assert!(
            secret[0].contains("webhooks[0].secret: unknown key"),
            "{secret:?}"
        );
    }

    #[test]
    fn a_full_file_reads_and_relative_paths_are_the_files_folders() {
        let file = parse_ok(&format!(
            r#"
tenants:
  acme:
    sources:
      hr-sftp:
        kind: sftp
        host: 127.0.0.1
        port: 2222
        user: acme-hr
        password_env: ACME_SFTP_PASSWORD
        known_hosts: known_hosts
        path: /outgoing
        pattern: "*.csv"
        after_fetch: archive
        archive_path: /outgoing/done
        mode: full
        format: auto
        ignore_encoding: true
        schedule: 15m
      dmz:
        kind: http
        url: https://dmz.acme.example/employees
        response: soap12
        request_body_file: soap-request.xml
        soap_action: urn:GetEmployees
        auth: {{bearer_env: ACME_TOKEN}}
        delta: {{param: modifiedSince, overlap: 10m, full_every: 7d}}
        page: {{size: 500, offset_param: offset, limit_param: limit}}
        schedule: "0 */6 * * *"
    push:
      password_hash: "{HASH}"
      authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0 acme"]
    bundle: {{users: people.csv, groups: teams.csv}}
"#
        ));
        let acme = &file.tenants["acme"];
        let sftp = &acme.sources["hr-sftp"];
        assert!(sftp.ignore_encoding);
        assert!(!acme.sources["dmz"].ignore_encoding);
        let bundle = acme.bundle.as_ref().unwrap();
        assert_eq!(
            (
                bundle.users.as_str(),
                bundle.groups.as_str(),
                bundle.mappings.as_str()
            ),
            ("people.csv", "teams.csv", "groups-mapping.csv"),
            "a name left out is the usual one"
        );
        assert_eq!(
            sftp.known_hosts.as_deref(),
            Some(Path::new("/etc/roster/known_hosts"))
        );
        assert_eq!(sftp.port, Some(2222));
        let dmz = &acme.sources["dmz"];
        assert_eq!(
            dmz.request_body_file.as_deref(),
            Some(Path::new("/etc/roster/soap-request.xml"))
        );
        assert_eq!(dmz.page.as_ref().unwrap().size, 500);
        assert!(acme.push.is_some());
    }

    #[test]
    fn unknown_keys_name_the_key_and_its_path() {
        let p = problems(
            "tenants:\n  acme:\n    sources:\n      s:\n        kind: sftp\n        passwrd: x\n",
        );
        assert_eq!(p, ["tenants.acme.sources.s.passwrd: unknown key"]);
        let p = problems(
            "tenants:\n  acme:\n    sources:\n      s:\n        kind: sftp\n        host: -oProxyCommand=sh\n        user: u\n        password_env: P\n        known_hosts: k\n        path: /\n",
        );
        assert_eq!(
            p,
            [
                "tenants.acme.sources.s.host: \"-oProxyCommand=sh\" is not a host name or an IP address"
            ]
        );
        let p = problems(
            "tenants:\n  acme:\n    bundle: {users: a/b.csv, groups: B.csv, mappings: b.csv}\n",
        );
        assert_eq!(
            p,
            [
                "tenants.acme.bundle.users: a file name, without folders",
                "tenants.acme.bundle.mappings: \"b.csv\" names another of the bundle's files too"
            ]
        );
        let p = problems("tenants:\n  acme:\n    sauces: {}\n");
        assert_eq!(p, ["tenants.acme.sauces: unknown key"]);
        let p = problems("tenantz: {}\n");
        assert_eq!(p, ["tenantz: unknown key"]);
        let p = problems(
            "tenants:\n  acme:\n    sources:\n      s:\n        kind: ftp\n        password: hunter2\n",
        );
        assert!(
            p[0].starts_with("tenants.acme.sources.s.password: unknown key (secrets are never"),
            "{p:?}"
        );
        assert!(!p[0].contains("hunter2"), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(
            r#"
tenants:
  acme:
    sources:
      Bad Name:
        kind: sftp
        host: h
        user: u
        path: /
      web:
        kind: http
        url: https://x.example/
        page: {size: 10, offset_param: o, limit_param: l}
        schedule: every tuesday
  "Acme.Corp":
    push: {authorized_keys: ['command="sh" ssh-ed25519 AAAA']}
"#,
        );
        let text = p.join("\n");
        for want in [
            "tenants.acme.sources.Bad Name: a source name",
            "tenants.acme.sources.Bad Name.known_hosts: required for kind sftp",
            "tenants.acme.sources.Bad Name: give exactly one of password_env",
            "tenants.acme.sources.web.page.size: 10 is not between 50 and 5000",
            "tenants.acme.sources.web.schedule:",
            "tenants.Acme.Corp.push: the tenant id is the login name",
            "tenants.Acme.Corp.push.authorized_keys[0]: starts with \"command=\\\"sh\\\"\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn yaml_mistakes_are_refused() {
        let p = problems("tenants:\n  acme: {}\n  acme: {}\n");
        assert!(p[0].contains("not valid YAML"), "{p:?}");
        let p = problems("tenants: [\n");
        assert!(p[0].contains("not valid YAML"), "{p:?}");
        let p = problems("");
        assert!(p[0].contains("empty"), "{p:?}");
    }

    #[test]
    fn password_hashes_are_sha512_crypt() {
        assert!(valid_sha512_crypt(HASH));
        assert!(valid_sha512_crypt(&HASH.replace("$6$", "$6$rounds=5000$")));
        assert!(!valid_sha512_crypt("$1$abc$def"));
        assert!(!valid_sha512_crypt("hunter2"));
        assert!(!valid_sha512_crypt("$6$salt$short"));
    }
}
