//! `corbel shadow report`: reads `GET /shadow` (or `/shadow/{binding}`) from a running server and
//! prints, per binding with a shadow candidate, how often the candidate agreed with the serving
//! version, and its last disagreements (docs/shadow.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::admission::shadow::{Disagreement, Report, VerdictView};

#[derive(Debug, Subcommand)]
pub enum ShadowCommand {
    /// Print each shadow candidate's agreement with the serving version, and its last
    /// disagreements, as a running `corbel serve` reports them.
    ///
    /// Counts start when the candidate was loaded (a reload starts them again); the server's
    /// /metrics has them since the process started (corbel_shadow_evaluations_total).
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The server's base URL (its `listen` address over HTTPS).
    #[arg(long, env = "CORBEL_SERVER", default_value = "https://127.0.0.1:8443")]
    server: String,
    /// Only this binding (default: every binding with a shadow candidate).
    #[arg(long)]
    binding: Option<String>,
    /// The CA that signed the server's certificate (PEM), e.g. the development CA's ca.crt;
    /// default: the system's trust store.
    #[arg(long, env = "CORBEL_CA_FILE", conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Do not check the server's certificate (a test server only: anyone on the path can read
    /// and change the report).
    #[arg(long)]
    insecure: bool,
    /// A bearer token to send, when a proxy in front of the server asks for one.
    #[arg(
        long,
        env = "CORBEL_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// Read the bearer token from this file.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// How many of the last disagreements to print per binding.
    #[arg(long, default_value_t = 10)]
    last: usize,
    /// Print the server's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: ShadowCommand) -> anyhow::Result<()> {
    match command {
        ShadowCommand::Report(args) => report(args).await,
    }
}

async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let client = client(&args)?;
    let base = args.server.trim_end_matches('/');
    let url = match &args.binding {
        Some(binding) => format!("{base}/shadow/{binding}"),
        None => format!("{base}/shadow"),
    };
    let mut request = client.get(&url);
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("failed to read the token file {}", file.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!("failed to reach {url} (is `corbel serve` running there? --ca-file for its CA)")
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("failed to read the answer of {url}"))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{url} answered {status}: {message}");
    }
    let reports: Vec<Report> = if args.binding.is_some() {
        vec![serde_json::from_str(&body).with_context(|| format!("{url} is not a shadow report"))?]
    } else {
        #[derive(serde::Deserialize)]
        struct All {
            bindings: std::collections::BTreeMap<String, Report>,
        }
        let all: All =
            serde_json::from_str(&body).with_context(|| format!("{url} is not a shadow report"))?;
        all.bindings.into_values().collect()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    if reports.is_empty() {
        println!(
            "no binding has a shadow candidate (add `shadow: {{plugin: ...}}` to one: docs/shadow.md)"
        );
        return Ok(());
    }
    print!("{}", table(&reports));
    for report in &reports {
        if let Some(error) = &report.error {
            println!("\n{}: the candidate did not load: {error}", report.binding);
        }
        if let Some(error) = &report.last_error {
            println!("\n{}: last error: {error}", report.binding);
        }
        if report.disagreements.is_empty() || args.last == 0 {
            continue;
        }
        let shown = report.disagreements.len().min(args.last);
        println!(
            "\n{}: the last {shown} of {} disagreements (the server keeps {}):",
            report.binding, report.disagreed, report.keep
        );
        for d in &report.disagreements[report.disagreements.len() - shown..] {
            print!("{}", disagreement(d));
        }
    }
    Ok(())
}

/// The summary table: one line per binding.
fn table(reports: &[Report]) -> String {
    let header = [
        "BINDING",
        "SERVING",
        "CANDIDATE",
        "REQUESTS",
        "AGREED",
        "DISAGREED",
        "SKIPPED",
        "ERRORS",
    ];
    let rows: Vec<[String; 8]> = reports
        .iter()
        .map(|r| {
            [
                r.binding.clone(),
                r.serving.clone(),
                if r.loaded {
                    r.candidate.clone()
                } else {
                    format!("{} (not loaded)", r.candidate)
                },
                r.requests.to_string(),
                r.agreed.to_string(),
                format!("{} ({:.1}%)", r.disagreed, r.disagreement_rate * 100.0),
                r.skipped.to_string(),
                r.errors.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn disagreement(d: &Disagreement) -> String {
    let object = match (d.namespace.as_str(), d.name.as_str()) {
        ("", "") => String::new(),
        ("", name) => format!(" {name}"),
        (ns, name) => format!(" {ns}/{name}"),
    };
    format!(
        "  {} {} {}{object} (uid {:?}): {} differ\n    serving:   {}\n    candidate: {}\n",
        d.at,
        d.operation,
        d.kind,
        d.uid,
        d.differs.join(", "),
        verdict(&d.serving),
        verdict(&d.candidate),
    )
}

fn verdict(v: &VerdictView) -> String {
    let mut out = if v.allowed {
        "allowed".to_owned()
    } else {
        format!("denied ({})", v.code.unwrap_or(403))
    };
    if let Some(message) = &v.message {
        out.push_str(&format!(": {message:?}"));
    }
    if let Some(serde_json::Value::Array(ops)) = &v.patch {
        out.push_str(&format!(" [patch: {} operations]", ops.len()));
    }
    out
}

fn client(args: &ReportArgs) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("failed to set up TLS")?;
    let tls = if args.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &args.ca_file {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("failed to read the CA file {}", path.display()))?
        {
            let cert =
                cert.with_context(|| format!("the CA file {} is not valid PEM", path.display()))?;
            roots.add(cert).with_context(|| {
                format!("the CA file {} has an invalid certificate", path.display())
            })?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "the CA file {} holds no certificate",
            path.display()
        );
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .context("failed to load the system's certificate verifier")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("corbel/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("failed to build the HTTP client")
}

/// `--insecure`: accepts any certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
