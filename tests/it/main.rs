//! Roster's integration suite: one test binary (so the workspace links once), modules by
//! subject. End-to-end cases are written once in `e2e` and run against every backend the
//! harness offers.

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
