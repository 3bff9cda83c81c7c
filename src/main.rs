use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use gatehouse::app::cli::{Cli, Command};
use gatehouse::app::gateway::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Crds) => gatehouse::api::crds_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(Into::into),
        Some(Command::Check(sources)) => return gatehouse::app::check::main(&sources),
        Some(Command::Run(args)) => gatehouse::app::run(args),
        None => gatehouse::app::run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::NoCluster(why)) => {
            eprintln!(
                "gatehouse: nothing to serve. Standalone mode needs --resources DIR (or --config FILE with inline \
                 routes:); Kubernetes mode needs in-cluster config or KUBECONFIG ({why})."
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("gatehouse: {:#}", anyhow::Error::new(e));
            ExitCode::from(1)
        }
    }
}
