//! The wiring on top of every room: the command line, `gatehouse check`, and the two ways the
//! gateway runs (standalone from a folder or a file, Kubernetes mode), which start the sources,
//! the publisher, the proxy, the hub, the admin and metrics servers and, in a cluster, the
//! controller.

pub mod check;
pub mod cli;
pub mod gateway;

use cli::RunArgs;
use gateway::{Error, KubeArgs};

/// `gatehouse run` (or no subcommand): loads the configuration, starts logging, builds the
/// runtime the flags ask for and serves in the mode the sources name until SIGTERM.
pub fn run(args: RunArgs) -> Result<(), Error> {
    let cfg = args.sources.load_config()?;
    crate::telemetry::init_logging(
        &cfg.observability.logging.level,
        &cfg.observability.logging.format,
    );
    let standalone = args.sources.resources.is_some() || !cfg.routes.is_empty() || !cfg.upstreams.is_empty();
    // One worker: a single-threaded scheduler avoids cross-thread wake-ups altogether.
    let mut rt = match args.workers.filter(|n| *n > 0) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = rt.enable_all().build().map_err(Error::Runtime)?;
    if standalone {
        rt.block_on(gateway::run_standalone(cfg, args.sources.resources))
    } else {
        let kube = KubeArgs {
            namespaces: args.namespaces,
            lease_duration: args.lease_duration,
            lease_namespace: args.lease_namespace,
            endpoints_api: args.endpoints_api,
        };
        rt.block_on(gateway::run_kubernetes(cfg, kube))
    }
}
