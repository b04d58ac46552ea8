//! The mutual TLS every benchmark shares: one CA, a server certificate for `localhost`, and a client identity
//! that every load client presents, so the echo baseline and the node pay the same handshake and record costs.

use std::net::SocketAddr;

use ecovol_coordinator::region::DivisionCode;
use ecovol_node::federation::certs;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Certificates of one benchmark run (PEM).
#[derive(Clone)]
pub struct BenchTls {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl BenchTls {
    pub fn generate() -> anyhow::Result<BenchTls> {
        let (ca_pem, ca_key_pem) = certs::generate_ca("bench")?;
        let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
        let (server_cert_pem, server_key_pem) =
            certs::issue_node_cert(&ca_pem, &ca_key_pem, DivisionCode::parse("330106")?, &hosts)?;
        let (client_cert_pem, client_key_pem) =
            certs::issue_node_cert(&ca_pem, &ca_key_pem, DivisionCode::parse("330108")?, &hosts)?;
        Ok(BenchTls { ca_pem, server_cert_pem, server_key_pem, client_cert_pem, client_key_pem })
    }

    /// The server side as the node configures its office port with `client_ca_file` (client auth optional).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.server_cert_pem, &self.server_key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            .client_auth_optional(true)
    }

    /// Files for a node's folder and the `[office.tls]` section naming them.
    pub fn office_files(&self) -> (Vec<(&'static str, Vec<u8>)>, String) {
        let files = vec![
            ("office.pem", self.server_cert_pem.clone().into_bytes()),
            ("office.key.pem", self.server_key_pem.clone().into_bytes()),
            ("office-ca.pem", self.ca_pem.clone().into_bytes()),
        ];
        let toml = "[office.tls]\ncert_file = \"office.pem\"\nkey_file = \"office.key.pem\"\n\
                    client_ca_file = \"office-ca.pem\"\n"
            .to_string();
        (files, toml)
    }

    /// One client connection (its own TCP and TLS session) presenting the client certificate.
    pub async fn channel(&self, address: SocketAddr) -> anyhow::Result<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .domain_name("localhost")
            .identity(Identity::from_pem(&self.client_cert_pem, &self.client_key_pem));
        Ok(Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls)?.tcp_nodelay(true).connect().await?)
    }

    /// `count` separate client connections.
    pub async fn channels(&self, address: SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count {
            channels.push(self.channel(address).await?);
        }
        Ok(channels)
    }
}
