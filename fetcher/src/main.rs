//! `roster-fetcher`: the fetcher stage as its own process.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not yet wired")
}
