use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use gatehouse::app::cli::{Cli, Command, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crds) => match gatehouse::api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.into()),
        },
        Some(Command::Check(src)) => match src.load_config() {
            Ok(cfg) => {
                match gatehouse::app::check::run(&cfg, src.resources.as_deref(), &mut std::io::stdout()) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::from(1),
                    Err(e) => fail(e.into()),
                }
            }
            Err(e) => {
                println!("rejected gateway configuration: {e}");
                ExitCode::from(1)
            }
        },
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let cfg = match args.sources.load_config() {
        Ok(c) => c,
        Err(e) => return fail(e.into()),
    };
    gatehouse::telemetry::init_logging(
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
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::Error::new(e).context("cannot start the runtime")),
    };
    let result = if standalone {
        rt.block_on(gatehouse::app::gateway::run_standalone(
            cfg,
            args.sources.resources,
        ))
    } else {
        let kube = gatehouse::app::gateway::KubeArgs {
            namespaces: args.namespaces,
            lease_duration: args.lease_duration,
            lease_namespace: args.lease_namespace,
            endpoints_api: args.endpoints_api,
        };
        rt.block_on(gatehouse::app::gateway::run_kubernetes(cfg, kube))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(gatehouse::app::gateway::Error::NoCluster(why)) => {
            eprintln!(
                "gatehouse: nothing to serve. Standalone mode needs --resources DIR (or --config FILE with inline \
                 routes:); Kubernetes mode needs in-cluster config or KUBECONFIG ({why})."
            );
            ExitCode::from(2)
        }
        Err(e) => fail(e.into()),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("gatehouse: {e:#}");
    ExitCode::from(1)
}
