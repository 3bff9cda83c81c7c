//! The command line as a user runs it (`check`, `crds`, mode selection, the seed configs), and
//! what ships beside the binary (chart, manifests, dashboard, image).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod packaging;
