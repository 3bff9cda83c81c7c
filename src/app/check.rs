//! `gatehouse check`: the verdicts status would carry, printed one line per resource, and the
//! Gateway API status of each GatewayClass, Gateway and HTTPRoute this gateway owns, one line
//! per object (`sources::StatusLine`).

use std::io::Write;

use crate::compile::compile;
use crate::compile::gateway_api::ApiStatus;
use crate::settings::GatewayConfig;
use crate::sources::{folder, StatusLine};

/// `gatehouse check`: exit 0 when nothing is rejected, 1 when something is (a configuration
/// that does not load counts), printing the verdicts to stdout.
pub fn main(sources: &super::cli::SourceArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cfg = match sources.load_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            println!("rejected gateway configuration: {e}");
            return ExitCode::from(1);
        }
    };
    match run(&cfg, sources.resources.as_deref(), &mut std::io::stdout()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(1)
        }
    }
}

/// Prints verdicts for `cfg` and `resources`; returns true when nothing was rejected.
pub fn run(
    cfg: &GatewayConfig,
    resources: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let options = match super::gateway::server_timeouts(cfg)
        .and_then(|_| super::gateway::compile_options(cfg, super::gateway::Mode::Standalone))
    {
        Ok(o) => o,
        Err(e) => {
            writeln!(out, "rejected gateway configuration: {e}")?;
            return Ok(false);
        }
    };
    let loaded = folder::load_all(cfg, resources);
    let compiled = compile(&loaded.snapshot, &options);
    for note in &loaded.notes {
        writeln!(out, "{note}")?;
    }
    for p in &loaded.problems {
        writeln!(out, "{p}")?;
    }
    let auth = compiled.table.auth_report();
    for line in &auth.lines {
        writeln!(out, "{line}")?;
    }
    if let Some(crate::routing::SecretUrl::Problem(p)) = &compiled.table.queue_url {
        writeln!(out, "{:<8} websocket.integration.message_queue: {p}", "warning")?;
    }
    let mut verdicts = compiled.verdicts;
    verdicts.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    for v in &verdicts {
        writeln!(out, "{v}")?;
    }
    let controller = options
        .gateway_api
        .as_ref()
        .map(|g| g.controller_name.as_str())
        .unwrap_or_default();
    let (api, api_rejected) = print_gateway_status(out, compiled.gateway_status, controller)?;
    let rejected = verdicts.iter().filter(|v| v.is_rejected()).count()
        + api_rejected
        + loaded.problems.len()
        + auth.rejected;
    writeln!(
        out,
        "{} resources: {} rejected, {} routes programmed",
        verdicts.len() + api + loaded.problems.len(),
        rejected,
        compiled.table.routes().len()
    )?;
    Ok(rejected == 0)
}

/// Prints one line per Gateway API object, in kind and name order; how many there are and how
/// many are rejected.
fn print_gateway_status(
    out: &mut dyn Write,
    mut status: Vec<ApiStatus>,
    controller: &str,
) -> std::io::Result<(usize, usize)> {
    status.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
    let mut rejected = 0;
    for status in &status {
        let line = StatusLine { status, controller };
        writeln!(out, "{line}")?;
        rejected += usize::from(line.is_rejected());
    }
    Ok((status.len(), rejected))
}

#[cfg(test)]
mod tests;
