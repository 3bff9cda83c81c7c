//! The wiring on top of every room: the command line, `gatehouse check`, and the two ways the
//! gateway runs (standalone from a folder or a file, Kubernetes mode), which start the sources,
//! the publisher, the proxy, the hub, the admin and metrics servers and, in a cluster, the
//! controller.

pub mod check;
pub mod cli;
pub mod gateway;
