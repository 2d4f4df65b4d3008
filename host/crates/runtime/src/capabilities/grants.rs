//! What a plugin's manifest requests ([`Requests`]) and what the operator grants
//! ([`GrantsConfig`], checked into [`Grants`]).

use serde::{Deserialize, Serialize};

/// A kind by `apiVersion` and `kind`, as in a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindRef {
    pub api_version: String,
    pub kind: String,
}

impl KindRef {
    pub fn gvk(&self) -> kube::core::GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        kube::core::GroupVersionKind::gvk(group, version, &self.kind)
    }

    pub fn matches(&self, group: &str, version: &str, kind: &str) -> bool {
        let gvk = self.gvk();
        gvk.group == group && gvk.version == version && gvk.kind == kind
    }
}

impl std::fmt::Display for KindRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// The capabilities a plugin's manifest requests.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    /// Reads Secrets (which ones is the operator's choice).
    #[serde(default)]
    pub secrets: bool,
    #[serde(default)]
    pub resources: ResourceRequests,
    /// Sends HTTP requests (to which hosts is the operator's choice).
    #[serde(default)]
    pub http: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequests {
    /// Kinds read with `get` and `list`.
    #[serde(default)]
    pub read: Vec<KindRef>,
    /// Kinds created, updated and deleted as children of the reconciled object (and read).
    #[serde(default)]
    pub write: Vec<KindRef>,
}

/// The operator's grants to one controller, as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantsConfig {
    /// Secrets the plugin may read.
    #[serde(default)]
    pub secrets: Vec<SecretGrant>,
    #[serde(default)]
    pub resources: ResourceRequests,
    /// Where the plugin may send HTTP requests: `scheme://host[:port]`, where the host may start
    /// with `*.` and the port may be `*`. The port defaults to the scheme's.
    #[serde(default)]
    pub http: Vec<String>,
}

/// Secrets in a namespace: `namespace` and `name` are exact, or `*` for any. A namespace of
/// `@self` means the reconciled object's own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretGrant {
    pub namespace: String,
    #[serde(default = "any")]
    pub name: String,
}

fn any() -> String {
    "*".into()
}

impl SecretGrant {
    pub fn allows(&self, own_namespace: Option<&str>, namespace: &str, name: &str) -> bool {
        let namespace_ok = match self.namespace.as_str() {
            "*" => true,
            "@self" => own_namespace == Some(namespace),
            exact => exact == namespace,
        };
        namespace_ok && (self.name == "*" || self.name == name)
    }
}

/// One `scheme://host[:port]` an HTTP grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    pub scheme: String,
    /// Exact, or `*.suffix` for any subdomain of `suffix`.
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl HttpGrant {
    pub fn parse(text: &str) -> Result<HttpGrant, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("{text:?} is not scheme://host[:port] (for example https://api.example.com)")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("{text:?}: scheme {other:?} is not http or https")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(format!(
                "{text:?}: give only scheme://host[:port], without a path or user"
            ));
        }
        // An IPv6 literal keeps its brackets; the port is whatever follows them.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let end = v6
                    .find(']')
                    .ok_or_else(|| format!("{text:?}: unclosed `[` in the host"))?;
                (&rest[..end + 2], v6[end + 1..].strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port {
            None => Some(default_port),
            Some("*") => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{text:?}: port {port:?} is not a number or `*`"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host == "*" {
            return Err(format!(
                "{text:?}: name a host (a grant to every host is not allowed; use *.domain for subdomains)"
            ));
        }
        Ok(HttpGrant { scheme, host, port })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => self.host.trim_start_matches('[').trim_end_matches(']') == host,
        };
        self.scheme == scheme && host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// Grants checked against the manifest: everything here was both requested and granted.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub secrets: Vec<SecretGrant>,
    pub read: Vec<KindRef>,
    pub write: Vec<KindRef>,
    pub http: Vec<HttpGrant>,
}

impl Grants {
    /// Checks the operator's grants against what the plugin requests. A grant of something the
    /// plugin does not request names nothing the plugin will use: it is an error, so a typo or a
    /// stale grant is found at load rather than silently widening what a plugin may do.
    pub fn check_against(config: &GrantsConfig, requests: &Requests) -> Result<Grants, String> {
        let mut problems = Vec::new();
        if !config.secrets.is_empty() && !requests.secrets {
            problems.push("grants `secrets`, which the plugin's manifest does not request".into());
        }
        if !config.http.is_empty() && !requests.http {
            problems.push("grants `http`, which the plugin's manifest does not request".into());
        }
        for kind in &config.resources.write {
            if !requests.resources.write.contains(kind) {
                problems.push(format!(
                    "grants writing {kind}, which the plugin's manifest does not request (it requests writing: {})",
                    list(&requests.resources.write)
                ));
            }
        }
        for kind in &config.resources.read {
            if !requests.resources.read.contains(kind) && !requests.resources.write.contains(kind) {
                problems.push(format!(
                    "grants reading {kind}, which the plugin's manifest does not request (it requests reading: {})",
                    list(&requests.resources.read)
                ));
            }
        }
        for grant in &config.secrets {
            if grant.namespace.is_empty() || grant.name.is_empty() {
                problems.push(
                    "a `secrets` grant needs a namespace and a name (`*` for any)".to_string(),
                );
            }
        }
        let mut http = Vec::new();
        for text in &config.http {
            match HttpGrant::parse(text) {
                Ok(grant) => http.push(grant),
                Err(e) => problems.push(format!("http grant {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Grants {
            secrets: config.secrets.clone(),
            read: config.resources.read.clone(),
            write: config.resources.write.clone(),
            http,
        })
    }

    pub fn may_read(&self, group: &str, version: &str, kind: &str) -> bool {
        self.read
            .iter()
            .chain(&self.write)
            .any(|k| k.matches(group, version, kind))
    }

    /// Whether every object of the kind may be read (a read grant), rather than only the
    /// reconciled object's children (what a write grant alone allows: granting Secret writes
    /// must not open every Secret in the cluster to reading).
    pub fn may_read_any(&self, group: &str, version: &str, kind: &str) -> bool {
        self.read.iter().any(|k| k.matches(group, version, kind))
    }

    pub fn may_write(&self, group: &str, version: &str, kind: &str) -> bool {
        self.write.iter().any(|k| k.matches(group, version, kind))
    }
}

fn list(kinds: &[KindRef]) -> String {
    if kinds.is_empty() {
        return "nothing".into();
    }
    kinds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(api_version: &str, kind: &str) -> KindRef {
        KindRef {
            api_version: api_version.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn http_grants_match_scheme_host_and_port() {
        let exact = HttpGrant::parse("http://127.0.0.1:3900").unwrap();
        assert!(exact.allows("http", "127.0.0.1", 3900));
        assert!(!exact.allows("https", "127.0.0.1", 3900));
        assert!(!exact.allows("http", "127.0.0.1", 3901));
        assert!(!exact.allows("http", "127.0.0.2", 3900));

        let default_port = HttpGrant::parse("https://Kong.Example.com/").unwrap();
        assert!(default_port.allows("https", "kong.example.com", 443));
        assert!(!default_port.allows("https", "kong.example.com", 8443));

        let wildcard = HttpGrant::parse("https://*.example.com:*").unwrap();
        assert!(wildcard.allows("https", "a.b.example.com", 8443));
        assert!(!wildcard.allows("https", "example.com", 443));
        assert!(!wildcard.allows("https", "evil-example.com", 443));

        let v6 = HttpGrant::parse("http://[::1]:8080").unwrap();
        assert!(v6.allows("http", "[::1]", 8080));
    }

    #[test]
    fn http_grants_that_are_not_an_origin_are_refused_with_the_reason() {
        for (text, why) in [
            ("example.com", "scheme://host"),
            ("ftp://example.com", "not http or https"),
            ("https://example.com/admin", "without a path"),
            ("https://*", "name a host"),
            ("https://example.com:eighty", "not a number"),
        ] {
            let e = HttpGrant::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn grants_beyond_what_the_manifest_requests_are_errors_naming_them() {
        let requests = Requests {
            secrets: false,
            resources: ResourceRequests {
                read: vec![kind("v1", "ConfigMap")],
                write: vec![kind("v1", "Secret")],
            },
            http: true,
        };
        let config = GrantsConfig {
            secrets: vec![SecretGrant {
                namespace: "*".into(),
                name: "*".into(),
            }],
            resources: ResourceRequests {
                read: vec![kind("v1", "Secret"), kind("apps/v1", "Deployment")],
                write: vec![kind("v1", "ConfigMap")],
            },
            http: vec!["https://kong.internal:8001".into()],
        };
        let e = Grants::check_against(&config, &requests).unwrap_err();
        assert!(e.contains("grants `secrets`"), "{e}");
        assert!(e.contains("grants writing v1 ConfigMap"), "{e}");
        assert!(e.contains("grants reading apps/v1 Deployment"), "{e}");
        assert!(
            !e.contains("reading v1 Secret"),
            "writing implies reading: {e}"
        );
    }

    #[test]
    fn granted_kinds_allow_reading_and_writing_as_granted() {
        let requests = Requests {
            resources: ResourceRequests {
                read: vec![kind("v1", "ConfigMap")],
                write: vec![kind("v1", "Secret")],
            },
            ..Default::default()
        };
        let config = GrantsConfig {
            resources: requests.resources.clone(),
            ..Default::default()
        };
        let grants = Grants::check_against(&config, &requests).unwrap();
        assert!(grants.may_read("", "v1", "ConfigMap"));
        assert!(grants.may_read("", "v1", "Secret"));
        assert!(grants.may_write("", "v1", "Secret"));
        assert!(!grants.may_write("", "v1", "ConfigMap"));
        assert!(!grants.may_read("apps", "v1", "Deployment"));
        assert!(grants.may_read_any("", "v1", "ConfigMap"));
        assert!(
            !grants.may_read_any("", "v1", "Secret"),
            "a write grant reads only the reconciled object's children"
        );
    }

    #[test]
    fn secret_grants_match_namespace_and_name() {
        let own = SecretGrant {
            namespace: "@self".into(),
            name: "*".into(),
        };
        assert!(own.allows(Some("team-a"), "team-a", "db"));
        assert!(!own.allows(Some("team-a"), "team-b", "db"));
        let one = SecretGrant {
            namespace: "storage".into(),
            name: "garage-keys".into(),
        };
        assert!(one.allows(None, "storage", "garage-keys"));
        assert!(!one.allows(None, "storage", "other"));
    }
}
