//! Command line: `run` (default), `check`, `crds`. Every flag has an environment twin.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::settings::{self, GatewayConfig};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Kubernetes ingress controller and API gateway with a WebSocket hub"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic: standalone with --resources / inline routes, else Kubernetes mode.
    Run(RunArgs),
    /// Validate the configuration and resources; one verdict line per resource, exit 1 if any is rejected.
    Check(SourceArgs),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crds,
}

#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Static gateway configuration (default: config/gateway.yaml if it exists).
    #[arg(long, env = "GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder of GatewayRoute/GatewayUpstream/WebSocketChannel/Secret YAML (standalone mode).
    #[arg(long, env = "GATEWAY_RESOURCES")]
    pub resources: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Kubernetes mode: watch only this namespace (repeatable; default all).
    #[arg(long = "namespace", env = "GATEWAY_NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Worker threads of the runtime (default: the CPUs this process may use).
    #[arg(long, env = "GATEWAY_WORKER_THREADS")]
    pub workers: Option<usize>,
    /// Kubernetes mode: how long a status writer keeps its Lease without renewing it.
    #[arg(long, env = "GATEWAY_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: String,
    /// Kubernetes mode: namespace of the Lease (default: the pod's, else the kubeconfig's).
    #[arg(long, env = "GATEWAY_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Kubernetes mode: endpoints of Services from `auto` (discover), `endpointslice`,
    /// `endpointslice-v1beta1` or `endpoints`.
    #[arg(long, env = "GATEWAY_ENDPOINTS_API", default_value = "auto")]
    pub endpoints_api: String,
}

impl SourceArgs {
    /// The configuration file to read, if any.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref().or_else(|| settings::default_config_path())
    }

    /// Loads the static configuration (file or built-in defaults) with env overrides.
    pub fn load_config(&self) -> settings::Result<GatewayConfig> {
        match self.config_path() {
            Some(p) => GatewayConfig::load(p),
            None => GatewayConfig::from_env(),
        }
    }
}
