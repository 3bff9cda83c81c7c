//! Where snapshots come from (a folder of YAML and the inline config, or the Kubernetes API
//! server) and the one path that turns a snapshot into the live table.

pub mod folder;
pub mod kube;
mod publish;
mod status_line;

pub use publish::{Published, Publisher};
pub use status_line::StatusLine;
