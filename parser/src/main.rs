//! `roster-parser`: the parser stage as its own process. Settings come from `ROSTER_*`
//! environment variables (see `roster_shared::config::Settings`).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not yet wired")
}
