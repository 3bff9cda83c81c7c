//! Kubernetes mode against a real kube-apiserver (`.ci/kube-apiserver.sh`, which
//! scripts/test.sh starts): the controller and its status (kube_controller), the status
//! writer's Lease (kube_lease), the API server going away (kube_outage), Secrets (kube_secrets),
//! namespaces as tenants (kube_tenancy), the Gateway API's objects and status
//! (kube_gateway_api), the Helm chart installed for real (helm_chart), and figures run by hand
//! (kube_bench and kube_gateway_api_bench, ignored).
//! Without the API server (or Helm) these tests skip, or fail where services are required
//! (support/services.rs). Tests that change what the others rely on take the cluster alone
//! (`support::cluster::cluster_alone`).

#[path = "../support/mod.rs"]
mod support;

mod helm_chart;
mod kube_bench;
mod kube_controller;
mod kube_gateway_api;
mod kube_gateway_api_bench;
mod kube_lease;
mod kube_outage;
mod kube_secrets;
mod kube_tenancy;
