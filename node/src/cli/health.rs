//! `ecovol health`: asks a node's office port for its gRPC health (`grpc.health.v1.Health/Check`) and exits 0 when
//! the node serves, 1 when it does not or cannot be reached in time. Made for container health checks and
//! Kubernetes exec probes, which run the binary without a shell (and, unlike Kubernetes' own `grpc` probes, it
//! speaks TLS: `--node https://localhost:7070 --ca ca.pem`).

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::connection::ConnectionArgs;
use super::connection::chain;
use super::console::Console;
use super::failure::Failure;

/// Arguments of `health` (the node is --node, with --ca / --domain for an https:// node).
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The gRPC service to ask about, e.g. ecovol.v1.VolunteerService [default: the node as a whole].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,

    /// Give up (exit 1) when the node has not answered within this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

/// Checks the node's health; `Ok` only when it reports SERVING.
pub async fn run(args: HealthArgs, connection: &ConnectionArgs, console: &mut Console<'_>) -> Result<(), Failure> {
    let endpoint = endpoint(connection, args.timeout_ms)?;
    let service = args.service.unwrap_or_default();
    let within = Duration::from_millis(args.timeout_ms);
    let unreachable = |detail: String| Failure::Unreachable { node: connection.node.clone(), detail };
    let asked = tokio::time::timeout(within, async {
        let channel = endpoint.connect().await.map_err(|error| unreachable(chain(&error)))?;
        let request = HealthCheckRequest { service: service.clone() };
        HealthClient::new(channel).check(request).await.map_err(Failure::Refused)
    })
    .await
    .map_err(|_| unreachable(format!("no answer within {} ms", args.timeout_ms)))??;
    let status = asked.into_inner().status();
    let label = status.as_str_name();
    if console.is_json() {
        console.json(&serde_json::json!({ "node": connection.node, "service": service, "status": label }));
    } else {
        console.print(&format!("{label}\n"));
    }
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        let what = if service.is_empty() { "the node".to_string() } else { format!("service {service}") };
        Err(Failure::Failed(format!("{what} at {} reports {label}", connection.node)))
    }
}

/// The endpoint of `--node`, with TLS from `--ca` (and `--domain`, `--cert`/`--key`) for an https:// node.
fn endpoint(connection: &ConnectionArgs, timeout_ms: u64) -> Result<Endpoint, Failure> {
    let timeout = Duration::from_millis(timeout_ms);
    let endpoint = Endpoint::from_shared(connection.node.clone())
        .map_err(|error| {
            Failure::Usage(format!("--node {} is not a URL like http://127.0.0.1:7070 ({error})", connection.node))
        })?
        .connect_timeout(timeout)
        .timeout(timeout);
    if !connection.node.to_ascii_lowercase().starts_with("https://") {
        return Ok(endpoint);
    }
    let read = |flag: &str, path: &Path| {
        std::fs::read(path).map_err(|error| Failure::Usage(format!("--{flag} {}: {error}", path.display())))
    };
    let ca = connection.ca.as_deref().ok_or_else(|| {
        Failure::Usage(format!(
            "--node {} uses TLS: give the CA certificate that signed the node's certificate with --ca FILE (or \
             ECOVOL_CA)",
            connection.node
        ))
    })?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca", ca)?));
    if let Some(domain) = &connection.domain {
        tls = tls.domain_name(domain.clone());
    }
    if let (Some(cert), Some(key)) = (&connection.cert, &connection.key) {
        tls = tls.identity(Identity::from_pem(read("cert", cert)?, read("key", key)?));
    }
    endpoint.tls_config(tls).map_err(|error| Failure::Usage(format!("TLS settings: {}", chain(&error))))
}

#[cfg(test)]
mod tests {
    use super::super::failure::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

    /// Runs `ecovol ARGS`; returns (exit code, standard output, standard error).
    async fn ecovol(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = std::iter::once("ecovol").chain(args.iter().copied()).map(str::to_string);
        let code = crate::cli::run_with(args, &mut out, &mut err).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    /// A gRPC health server on loopback reporting `serving` for the whole server; returns its address.
    async fn health_server(serving: bool) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (reporter, service) = tonic_health::server::health_reporter();
        let status =
            if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
        reporter.set_service_status("", status).await;
        tokio::spawn(async move {
            // Keeps the reporter alive as long as the server.
            let _reporter = reporter;
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        address
    }

    #[tokio::test]
    async fn a_serving_node_exits_0_and_a_not_serving_one_1() {
        let serving = format!("http://{}", health_server(true).await);
        let (code, out, err) = ecovol(&["health", "--node", &serving]).await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert_eq!(out, "SERVING\n");
        let (code, out, _) = ecovol(&["-o", "json", "health", "--node", &serving]).await;
        assert_eq!(code, EXIT_OK);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["status"], "SERVING");

        let not_serving = format!("http://{}", health_server(false).await);
        let (code, out, err) = ecovol(&["health", "--node", &not_serving]).await;
        assert_eq!(code, EXIT_FAILED);
        assert_eq!(out, "NOT_SERVING\n");
        assert!(err.contains("reports NOT_SERVING"), "{err}");

        let (code, _, err) = ecovol(&["health", "--node", &serving, "--service", "no.such.Service"]).await;
        assert_eq!(code, EXIT_FAILED, "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_node_exits_1_and_a_bad_command_line_2() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let (code, _, err) = ecovol(&["health", "--node", &format!("http://{closed}"), "--timeout-ms", "2000"]).await;
        assert_eq!(code, EXIT_FAILED);
        assert!(err.contains("cannot reach the node"), "{err}");
        let (code, _, err) = ecovol(&["health", "--node", "https://localhost:7070"]).await;
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("--ca"), "{err}");
        let (code, _, _) = ecovol(&["health", "--node", "not a url"]).await;
        assert_eq!(code, EXIT_USAGE);
    }
}
