//! Roster's integration suite: one test binary (so the workspace links once), modules by
//! subject. End-to-end cases are written once in `e2e` and run against every backend the
//! harness offers.

/// Runs every case against every backend listed: one module per backend, one test per
/// case (`backends!([embedded => Install::embedded(), ...], [case, ...])`, each case a
/// `fn(&Install)` of the module that calls it).
macro_rules! backends {
    ([$($backend:ident => $make:expr),* $(,)?], $cases:tt) => {
        $(backends!(@one $backend, $make, $cases);)*
    };
    (@one $backend:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let install = $make;
                    super::$case(&install);
                }
            )*
        }
    };
}

mod api;
mod commands;
mod e2e;
mod events;
mod fault;
mod fetcher;
mod harness;
mod identity;
mod pipeline;
mod probes;
mod property;
mod push_tool;
mod remote;
mod safety;
mod sources;
mod ssh;
mod supervisor;
mod webhooks;
