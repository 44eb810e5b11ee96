//! Where the server listens, and whose forwarded client addresses it believes.
use std::net::{IpAddr, SocketAddr};

use clap::Args;

use super::parse::NamingEnv;

/// HTTP settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen one is logged).
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Proxy addresses whose `X-Forwarded-For` is believed (comma-separated IPs). Empty: the socket
    /// address is the client address.
    #[arg(long, env = "GATEHOUSE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins allowed to call the JSON API from a browser (CORS), comma-separated, each exactly
    /// as browsers send it (`https://app.example.com`, `http://localhost:5173`). Empty: CORS is
    /// off. Never `Access-Control-Allow-Credentials` (the API takes bearer tokens, not cookies);
    /// the pages never carry CORS headers.
    #[arg(
        long,
        env = "GATEHOUSE_CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = NamingEnv::new(crate::cors::parse_origin)
    )]
    pub cors_origins: Vec<crate::cors::Origin>,
}
